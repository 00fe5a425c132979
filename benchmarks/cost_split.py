"""Where a model's time goes: the encoder (once per input pixel) against the decoder (once per output pixel).

    python benchmarks/cost_split.py [--model lite] [--size 256x256] [--scales 2,3,4,8,2.5,2.37] [--write]

For one input, the median wall time of the model's `encode` and of its grid decoder (`query_grid`) over the whole
output, at each scale and in each precision this CPU runs (fp32, and bf16 where it is native). The decoder's
share of the sum says what a speed-up can buy: skipping the decoder on part of the image (adaptive routing) or
making the encoder shallower (compression) saves at most that part's share. The general decoder column times the
same grid with the phase-dense path of periodic grids turned off (every row band gathered), so the speed-up
column is what that path buys at each scale (≈1× where the scale has no small period, as ×2.37). `--write` records the table in
docs/results/cost.md. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine_info import cpu_summary  # beside this script

from enlarge.coords import axis_coords
from enlarge.engine.precision import BF16, FP32, bf16_supported, precision_context
from enlarge.engine.tiling import channels_last_copy
from enlarge.models import ensemble
from enlarge.models.registry import SPECS, available, create

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "cost.md"
REPEATS = 3
SEED = 0


def median_time(run: Callable[[], object], repeats: int = REPEATS) -> float:
    """Median wall time of `run()` after one untimed warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def split(
    module: torch.nn.Module, size: tuple[int, int], scale: float, precision: str
) -> tuple[float, float, float]:
    """(encoder s, decoder s, general decoder s) of `module` for a random `size` (h, w) input enlarged ×`scale`."""
    lr = channels_last_copy(torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(SEED)))
    out_h, out_w = round(size[0] * scale), round(size[1] * scale)
    ys, xs = axis_coords(out_h), axis_coords(out_w)
    cell = torch.tensor([2.0 / out_h, 2.0 / out_w])
    with torch.inference_mode(), precision_context(precision, lr.device):
        feats = module.encode(lr)
        encoder = median_time(lambda: module.encode(lr))
        decoder = median_time(lambda: module.query_grid(feats, ys, xs, cell))
        phases, ensemble.axis_phases = ensemble.axis_phases, lambda coords, n: None  # no axis is periodic
        try:
            general = median_time(lambda: module.query_grid(feats, ys, xs, cell))
        finally:
            ensemble.axis_phases = phases
    return encoder, decoder, general


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lite", help="a registered model with a grid decoder (default lite)")
    parser.add_argument("--size", default="256x256", help="input W×H (default 256x256)")
    parser.add_argument("--scales", default="2,3,4,8,1.5,2.5,3.75,2.37")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    precisions = (FP32, BF16) if bf16_supported() else (FP32,)
    module = create(args.model, pretrained=available(SPECS[args.model])).module  # random weights where none ship
    lines = [("| precision | scale | encoder s | decoder s | decoder share | s/MP out | general decoder s | "
              "dense speed-up |"), "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for precision in precisions:
        for scale in (float(s) for s in args.scales.split(",")):
            encoder, decoder, general = split(module, (h, w), scale, precision)
            megapixels = round(h * scale) * round(w * scale) / 1e6
            lines.append(f"| {precision} | ×{scale:g} | {encoder:.3f} | {decoder:.3f} | "
                         f"{decoder / (encoder + decoder):.0%} | {(encoder + decoder) / megapixels:.3f} | "
                         f"{general:.3f} | {general / decoder:.2f}× |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    machine = f"{cpu_summary()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if args.write:
        RESULT.write_text(
            f"# Where the time goes\n\nProduced by `python benchmarks/cost_split.py --write`: `{args.model}` on a "
            f"random {w}×{h} input, median of {REPEATS} runs of its encoder and of its grid decoder over the whole "
            f"output, and of the general decoder (phase-dense path off).\n\nMachine: {machine}\n\n{table}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
