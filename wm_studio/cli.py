"""The `wm-studio` command: the studio by default, and every pipeline stage as a sub-command.

Qt is imported only by the sub-commands that draw (gui, es-animate), so the rest run on machines without it.
"""
from __future__ import annotations

import argparse
import logging
import sys

from wm_studio import __version__
from wm_studio.commands import COMMAND_MODULES
from wm_studio.core.errors import WmStudioError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wm-studio",
        description="World Models Studio: train V (VAE), M (MDN-RNN) and C (CMA-ES controller) and see each "
                    "part work. With no sub-command it opens the studio.")
    parser.add_argument("--version", action="version", version=f"wm-studio {__version__}")
    parser.add_argument("--info", action="store_true",
                        help="print the versions of Python, Qt, pyqtgraph, numpy, Chainer, CuPy and the GPU, "
                             "then exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.info:
        from wm_studio.info import describe_environment
        print(describe_environment())
        return 0
    if args.command is None:  # plain `wm-studio` / `python main.py`: the studio
        args = parser.parse_args(["gui", *argv])
    # The studio shows the log in its dock (and warnings on the terminal); a command prints warnings on stderr.
    warnings = _TerminalHandler(logging.WARNING) if args.command != "gui" else None
    if warnings is not None:
        logging.getLogger("wm_studio").addHandler(warnings)
    try:
        return int(args.func(args) or 0)
    except WmStudioError as exc:
        print(f"wm-studio: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wm-studio: interrupted", file=sys.stderr)
        return 130
    finally:
        if warnings is not None:   # main() may run again in the same process (tests do)
            logging.getLogger("wm_studio").removeHandler(warnings)


class _TerminalHandler(logging.Handler):
    """Warnings and errors of the stages (a lost worker process...) on stderr, each on a line of its own."""

    def emit(self, record):
        try:
            stream = sys.stderr
            clear = "\r\x1b[2K" if stream.isatty() else ""   # a progress bar's unfinished line
            stream.write(f"{clear}wm-studio: {record.levelname.lower()}: {record.getMessage()}\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never end a command
            self.handleError(record)



if __name__ == "__main__":
    raise SystemExit(main())
