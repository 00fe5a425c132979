"""`enlarge pack CONFIG OUT.tar`: the config's training images in one file, to train where only the repo travels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from enlarge.training.config import load_config
from enlarge.training.pack import DEFAULT_BUDGET_MB, MEGABYTE, pack_training_data


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pack")
    parser.add_argument("config", type=Path, help="training config, e.g. configs/detail.yaml")
    parser.add_argument("output", type=Path, help="the tar to write")
    parser.add_argument("--max-mb", type=float, default=DEFAULT_BUDGET_MB,
                        help=f"size budget in MB (default {DEFAULT_BUDGET_MB:g})")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = pack_training_data(load_config(args.config), args.output, args.max_mb)
    left = f", {result.left_out} left out to fit" if result.left_out else ""
    again = f", {result.reencoded} re-encoded as JPEG" if result.reencoded else ""
    print(f"{result.path}: {result.images} images, {result.bytes / MEGABYTE:.1f} MB{again}{left}", file=sys.stderr)
    return 0
