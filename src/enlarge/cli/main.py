"""The `enlarge` command: parses arguments, hands them to a command module, turns typed errors into one line."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from enlarge import __version__
from enlarge.errors import EnlargeError

# Each command lives in its own module under enlarge.cli with `register(subparsers)`;
# the module's parser sets `run=callable(args) -> int` as its default.
COMMAND_MODULES = (
    "upscale",
    "models",
    "train",
    "pack",
    "export",
    "eval",
    "compress",
    "serve",
    "batch",
    "profile",
    "adaptive",
    "calibrate",
)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one sub-parser per command module."""
    parser = argparse.ArgumentParser(prog="enlarge", description="Enlarge images by any factor.")
    parser.add_argument("--version", action="version", version=f"enlarge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"enlarge.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except EnlargeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
