"""`--run` of the commands that only read a run (dream, evaluate): by default the bundled CarRacing model, the
folder the studio opens on first launch. A bundle is read-only: those commands write only the files named by
--out / --record (wm_studio.core.runs.output_file refuses any inside a bundle)."""
from __future__ import annotations

import sys

from wm_studio.core.errors import ConfigError
from wm_studio.core.run_contents import looks_like_run
from wm_studio.core.runs import DEFAULT_MODEL


def add_run_option(parser) -> None:
    parser.add_argument("--run", metavar="FOLDER", default=None,
                        help="the run folder (default: the bundled CarRacing model, resources/default_model, as "
                             "the studio opens it)")


def chosen_run(args) -> str:
    """args.run, else the bundled model (said on stderr, so that stdout keeps only the results)."""
    if args.run is not None:
        return args.run
    if not looks_like_run(DEFAULT_MODEL):
        raise ConfigError(f"no --run given, and this installation has no bundled model ({DEFAULT_MODEL}): name a "
                          f"run folder with --run FOLDER")
    print(f"wm-studio: no --run given: using the bundled model ({DEFAULT_MODEL}); --run FOLDER for a run of "
          f"your own", file=sys.stderr, flush=True)
    args.run = str(DEFAULT_MODEL)
    return args.run
