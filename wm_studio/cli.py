"""The `wm-studio` command: the studio by default, and every pipeline stage as a sub-command.

Qt is imported only by the sub-commands that draw (gui, es-animate), so the rest run on machines without it.
"""
from __future__ import annotations

import argparse
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
    try:
        return int(args.func(args) or 0)
    except WmStudioError as exc:
        print(f"wm-studio: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wm-studio: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
