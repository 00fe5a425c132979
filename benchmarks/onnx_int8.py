"""What int8 costs in quality and buys in time: lite's ONNX export in fp32 and quantised to int8
(`export_onnx(..., int8=True)`), scored on benchmark sets by the SR protocol (Y-PSNR, border = scale).

    python benchmarks/onnx_int8.py [--model lite] [--data DIR ...] [--scales 2,4]

Prints per set and scale the PSNR of both exports, the int8 loss (fp32 − int8, dB) and the summed render time of
int8 over fp32's (the two alternate image by image, one thread each, so a busy machine slows both alike). The
shipping rule of issue 14: int8 becomes a default only where the loss is ≤ 0.05 dB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from enlarge.engine import render
from enlarge.evaluation import LEVELS, Settings, find_dataset, load_pair, to_uint8
from enlarge.export.onnx import export_onnx, load_onnx_folder
from enlarge.metrics import psnr
from enlarge.models.registry import load_model

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "benchmark"
DEFAULT_SETS = ("Set5", "Set14")
SHIP_LOSS_DB = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lite")
    parser.add_argument("--data", nargs="*", type=Path, default=[DATA / name for name in DEFAULT_SETS])
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings(scales=tuple(int(s) for s in args.scales.split(",")))
    loaded = load_model(args.model)
    with tempfile.TemporaryDirectory(prefix="enlarge-int8-") as tmp:
        exports = {}
        for label, int8 in (("fp32", False), ("int8", True)):
            export_onnx(loaded, Path(tmp) / label, int8=int8)
            exports[label] = load_onnx_folder(Path(tmp) / label, args.threads)
        print(f"`{args.model}` ONNX, load average per core at start {os.getloadavg()[0] / (os.cpu_count() or 1):.2f}\n")
        print("| set | scale | fp32 PSNR | int8 PSNR | int8 loss dB | int8 time / fp32 time |")
        print("|---|---:|---:|---:|---:|---:|")
        for folder in args.data:
            dataset = find_dataset(folder)
            for scale in settings.scales:
                scores = {label: [] for label in exports}
                seconds = dict.fromkeys(exports, 0.0)
                for hr_path in dataset.images:
                    hr, lr = load_pair(dataset, hr_path, scale, settings)
                    for label, model in exports.items():
                        start = time.perf_counter()
                        sr = render(model, lr.unsqueeze(0).float() / LEVELS, tuple(hr.shape[-2:]))
                        seconds[label] += time.perf_counter() - start
                        sr = to_uint8(sr[0]).to(torch.float64) / LEVELS
                        scores[label].append(psnr(sr, hr.to(torch.float64) / LEVELS, settings.shave(scale),
                                                  settings.metric))
                mean = {label: sum(v) / len(v) for label, v in scores.items()}
                print(f"| {dataset.name} | ×{scale} | {mean['fp32']:.3f} | {mean['int8']:.3f} | "
                      f"{mean['fp32'] - mean['int8']:.3f} | {seconds['int8'] / seconds['fp32']:.2f}× |", flush=True)
    print(f"\nint8 ships as a default only where the loss is ≤ {SHIP_LOSS_DB} dB.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
