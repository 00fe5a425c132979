"""How much of bicubic's loss on point-sampled LR is a shift: bicubic upscaling of `enlarge eval --degrade nearest`
LR, as sampled (the baseline of issue 18's must) and moved back by the offset point sampling leaves.

Point sampling by a whole factor s keeps HR pixel floor((i + ½)·s) for LR pixel i, whose centre lies ½ HR pixel
(1/(2s) LR pixels) past the LR pixel's own centre when s is even; an upscaler that assumes centred samples puts
every edge that far off. Writes docs/results/point-sampling.md with --write.

    python benchmarks/point_sampling_shift.py [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from enlarge.evaluation import LEVELS, Settings, find_dataset, load_pair
from enlarge.metrics import psnr

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = REPO.parent / "shared" / "data" / "benchmark"
RESULT = REPO / "docs" / "results" / "point-sampling.md"
DATASETS = ("Set5", "Set14")
SCALES = (2, 4)


def bicubic_at(lr: torch.Tensor, size: tuple[int, int], shift: float) -> torch.Tensor:
    """Bicubic samples of `lr` (3×h×w in [0, 1]) at the centres of an H×W output, `shift` LR pixels up-left."""
    h, w = lr.shape[-2:]
    rows = ((torch.arange(size[0]) + 0.5) / size[0] * h - 0.5 - shift) / (h - 1) * 2 - 1
    cols = ((torch.arange(size[1]) + 0.5) / size[1] * w - 0.5 - shift) / (w - 1) * 2 - 1
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij")[::-1], dim=-1)[None]
    out = F.grid_sample(lr[None], grid, mode="bicubic", padding_mode="border", align_corners=True)[0]
    return out.clamp(0, 1)


def sampling_offset(scale: int) -> float:
    """LR pixels between a point-sampled LR pixel's source and its centre: ½ HR pixel for even factors, else 0."""
    return 0.5 / scale if scale % 2 == 0 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    args = parser.parse_args()
    settings = Settings(scales=SCALES, degrade="nearest")
    lines = ["| dataset | scale | bicubic, as sampled | bicubic, shift undone | difference |", "|---|---:|---:|---:|---:|"]
    for name in DATASETS:
        dataset = find_dataset(BENCHMARK / name)
        for scale in SCALES:
            scores: dict[bool, list[float]] = {False: [], True: []}
            for path in dataset.images:
                hr, lr = load_pair(dataset, path, scale, settings)
                hr_f, lr_f = hr.float() / LEVELS, lr.float() / LEVELS
                for undone in scores:
                    sr = bicubic_at(lr_f, tuple(hr.shape[-2:]), sampling_offset(scale) if undone else 0.0)
                    scores[undone].append(psnr((sr * LEVELS).round() / LEVELS, hr_f, scale))
            plain, undone = (float(np.mean(scores[k])) for k in (False, True))
            lines.append(f"| {name} | ×{scale} | {plain:.2f} | {undone:.2f} | {undone - plain:+.2f} dB |")
    text = "\n".join([
        "# Point-sampled LR: the shift", "",
        "Produced by `python benchmarks/point_sampling_shift.py --write`. LR as `enlarge eval --degrade nearest` makes",
        "it (every s-th HR pixel, the one at floor((i + ½)·s)); Y-PSNR (shave = scale) of bicubic upscaling (PyTorch's",
        "bicubic, border padding) at the output pixel centres as usual, and moved by the half HR pixel that point",
        "sampling by an even factor leaves between a sample and its LR pixel's centre.", "",
        *lines, "",
    ])
    print(text)
    if args.write:
        RESULT.write_text(text)
        print(f"wrote {RESULT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
