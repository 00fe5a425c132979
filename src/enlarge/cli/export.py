"""`enlarge export RUN_DIR --name NAME`: a run's weights as NAME.safetensors + NAME.json model card."""

from __future__ import annotations

import argparse
from pathlib import Path

from enlarge.training.export import WHICH, export_run


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a training run's weights and model card")
    parser.add_argument("run_dir", type=Path, help="the run folder, e.g. runs/lite")
    parser.add_argument("--name", required=True, help="model name: writes NAME.safetensors and NAME.json")
    parser.add_argument("--out", type=Path, help="output folder (default: the package's weights folder)")
    parser.add_argument("--which", choices=WHICH, default="best", help="best validation weights or the last ones")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = export_run(args.run_dir, args.name, out_dir=args.out, which=args.which)
    macs = ", ".join(f"{k} {v / 1e3:.1f} k" for k, v in result.card.macs_per_output_pixel.items())
    print(f"wrote {result.weights} and {result.card_path} ({result.card.parameters} parameters; MACs/pixel {macs})")
    return 0
