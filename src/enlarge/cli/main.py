"""The `enlarge` command: parses arguments, hands them to a command module, turns typed errors into one line
(with the command's flag for the setting an error names: cli/flags.py)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from enlarge import __version__, threads
from enlarge.cli.flags import with_flag
from enlarge.errors import EnlargeError


@dataclass(frozen=True)
class Command:
    """A command: the module under enlarge.cli that defines it, and its line in `enlarge --help`."""

    module: str
    help: str


# Each command lives in its own module under enlarge.cli with `register(subparsers)`; the module's parser sets
# `run=callable(args) -> int` as its default. Only the module of the command being run is imported, so
# `enlarge --help` and light commands start without torch; the others appear in the help as these lines.
COMMANDS = {
    "upscale": Command("upscale", "enlarge images by a scale or to a size"),
    "models": Command("models", "list the available models"),
    "train": Command("train", "train a model from a YAML config (see configs/)"),
    "pack": Command("pack", "pack a training config's images into one tar (for a GPU machine)"),
    "export": Command("export", "export a training run's weights and model card, or a model as ONNX"),
    "eval": Command("eval", "score models on benchmark folders (PSNR / SSIM)"),
    "compress": Command(
        "compress", "remove low-entropy ReLUs of a trained model (EASIER), fine-tune, merge; or report their entropies"
    ),
    "serve": Command("serve", "run the HTTP API and web page"),
    "batch": Command("batch", "run a resumable batch job from a job file and/or flags"),
    "profile": Command("profile", "measure model speed on this machine (for --model auto)"),
    "calibrate-adaptive": Command("adaptive", "calibrate adaptive enlargement for a model (writes its card)"),
    "calibrate": Command("calibrate", "decide a model's default precision (bf16 or fp32) from its measured PSNR loss"),
}

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every command listed, and the full sub-parser of `command` (its module imported)."""
    parser = argparse.ArgumentParser(prog="enlarge", description="Enlarge images by any factor.")
    parser.add_argument("--version", action="version", version=f"enlarge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, spec in COMMANDS.items():
        if name == command:
            importlib.import_module(f"enlarge.cli.{spec.module}").register(sub)
        else:
            sub.add_parser(name, help=spec.help, add_help=False)
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command named on the command line: its first word, if that is one (options come only after it)."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def command_flags(command: str | None) -> dict[str, str]:
    """The command module's `FLAGS` (settings it spells otherwise than `--name-with-dashes`); none by default."""
    if command is None:
        return {}
    return dict(getattr(importlib.import_module(f"enlarge.cli.{COMMANDS[command].module}"), "FLAGS", {}))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    threads.prepare()  # before any command imports torch: OpenMP reads how to wait when it loads
    command = chosen_command(argv)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except EnlargeError as exc:
        print(f"error: {with_flag(exc, command_flags(command))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
