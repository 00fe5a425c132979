"""`enlarge train CONFIG.yaml`: start or resume a training run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from enlarge.training.checkpoint import LAST
from enlarge.training.loop import train_from_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train")
    parser.add_argument("config", type=Path, help="training config, e.g. configs/lite.yaml")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue from runs/NAME/last.pt")
    resume.add_argument("--resume-from", type=Path, metavar="PATH", help="continue from this checkpoint file")
    parser.add_argument("--steps", type=int, help="total steps (overrides the config)")
    parser.add_argument("--name", help="run name (default: the config file's name); the run lives in runs/NAME")
    parser.add_argument("--data-root", type=Path, metavar="DIR",
                        help="where the training images are (overrides data.data_root, e.g. an unpacked pack)")
    parser.add_argument("--data-workers", type=int, metavar="N",
                        help="processes making batches ahead (overrides the config; a GPU needs several)")
    parser.add_argument("--device", default="cpu", help="where the steps run: cpu (default) or cuda[:N]")
    parser.add_argument("--max-minutes", type=float, metavar="N",
                        help="stop cleanly with a checkpoint after N minutes of this session")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = train_from_file(args.config, name=args.name, resume=args.resume, resume_from=args.resume_from,
                             steps=args.steps, data_root=args.data_root, device=args.device, max_minutes=args.max_minutes,
                             data_workers=args.data_workers)
    best = f"; best val Y-PSNR {result.best_psnr:.3f} dB at step {result.best_step}" if result.best_psnr is not None else ""
    if result.stopped_by:
        print(f"stopped by {result.stopped_by} at step {result.step}/{result.total}; checkpoint "
              f"{result.run_dir / LAST}{best}\ncontinue with: enlarge train {args.config} --resume --name {result.name}",
              file=sys.stderr)
    else:
        print(f"{result.name}: step {result.step}/{result.total} in {result.run_dir}{best}", file=sys.stderr)
    return 0
