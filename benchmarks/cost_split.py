"""Where a model's time goes: the encoder (once per input pixel) against the decoder (once per output pixel).

    python benchmarks/cost_split.py [--model lite] [--size 256x256] [--scales 2,3,4,8,2.5,2.37] [--repeats 3] [--write [--out FILE]]

For one input, the median wall time of the model's `encode` and of its grid decoder (`query_grid`) over the whole
output, at each scale and in each precision this CPU runs (fp32, and bf16 where it is native). The decoder's
share of the sum says what a speed-up can buy: skipping the decoder on part of the image (adaptive routing) or
making the encoder shallower (compression) saves at most that part's share. The general decoder column times the
same grid with the phase-dense path of periodic grids turned off (every row band gathered), so the speed-up
column is what that path buys at each scale (≈1× where the scale has no small period, as ×2.37).

The floor columns say how near the hardware limit that is: MACs/px is the model's count per output pixel
(`count_macs`: encoder MACs per LR pixel / scale² + decoder MACs per output pixel, solved from ×2 and ×4), and the
floor is that many MACs at this CPU's dense rate, the faster of a 3×3 convolution and a GEMM, 64 channels wide,
measured in the same run and precision. The decoder's MACs are real work on every path (each output pixel runs
the head for four neighbours; only the first layer's geometry term, about a tenth, becomes a per-phase constant
on the phase-dense path), so no implementation of this model runs much below the floor on this machine.
`--write` records the table in docs/results/cost.md (or `--out FILE`: one file per machine kind). Run it on a
quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine_info import heavy_processes, torch_machine  # beside this script

from enlarge.coords import axis_coords
from enlarge.engine.precision import BF16, FP32, bf16_supported, precision_context
from enlarge.engine.tiling import channels_last_copy
from enlarge.models import ensemble
from enlarge.models.macs import count_macs
from enlarge.models.registry import SPECS, available, create

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "cost.md"
REPEATS = 3
SEED = 0
GIGA = 1e9
MEGA = 1e6
KILO = 1e3
RATE_WIDTH = 64  # channels of the probe convolution and GEMM: lite's hidden width
GEMM_ROWS = 1 << 16  # rows of the probe GEMM (one decoder band's worth of queries)


def median_time(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of `run()` after one untimed warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def split(
    module: torch.nn.Module, size: tuple[int, int], scale: float, precision: str, repeats: int
) -> tuple[float, float, float]:
    """(encoder s, decoder s, general decoder s) of `module` for a random `size` (h, w) input enlarged ×`scale`."""
    lr = channels_last_copy(torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(SEED)))
    out_h, out_w = round(size[0] * scale), round(size[1] * scale)
    ys, xs = axis_coords(out_h), axis_coords(out_w)
    cell = torch.tensor([2.0 / out_h, 2.0 / out_w])
    with torch.inference_mode(), precision_context(precision, lr.device):
        feats = module.encode(lr)
        encoder = median_time(lambda: module.encode(lr), repeats)
        decoder = median_time(lambda: module.query_grid(feats, ys, xs, cell), repeats)
        phases, ensemble.axis_phases = ensemble.axis_phases, lambda coords, n: None  # no axis is periodic
        try:
            general = median_time(lambda: module.query_grid(feats, ys, xs, cell), repeats)
        finally:
            ensemble.axis_phases = phases
    return encoder, decoder, general


def dense_rate(size: tuple[int, int], precision: str, repeats: int) -> float:
    """MACs per second of this CPU's best dense kernels in `precision`: the faster of a 3×3 convolution over a
    `size` map and a GEMM, both RATE_WIDTH channels wide."""
    generator = torch.Generator().manual_seed(SEED)
    conv = torch.nn.Conv2d(RATE_WIDTH, RATE_WIDTH, 3, padding=1).eval()
    x = channels_last_copy(torch.rand(1, RATE_WIDTH, *size, generator=generator))
    a = torch.rand(GEMM_ROWS, RATE_WIDTH, generator=generator)
    b = torch.rand(RATE_WIDTH, RATE_WIDTH, generator=generator)
    with torch.inference_mode(), precision_context(precision, x.device):
        conv_s = median_time(lambda: conv(x), repeats)
        gemm_s = median_time(lambda: a @ b, repeats)
    conv_macs = size[0] * size[1] * RATE_WIDTH * RATE_WIDTH * 9
    return max(conv_macs / conv_s, GEMM_ROWS * RATE_WIDTH * RATE_WIDTH / gemm_s)


def macs_per_pixel(module: torch.nn.Module) -> tuple[float, float]:
    """(encoder MACs per LR pixel, decoder MACs per output pixel): count_macs at ×2 and ×4 solved for
    total(s) = encoder / s² + decoder."""
    counts = count_macs(module, scales=(2, 4))
    encoder = (counts["x2"] - counts["x4"]) / (1 / 4 - 1 / 16)
    return encoder, counts["x2"] - encoder / 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lite", help="a registered model with a grid decoder (default lite)")
    parser.add_argument("--size", default="256x256", help="input W×H (default 256x256)")
    parser.add_argument("--scales", default="2,3,4,8,1.5,2.5,3.75,2.37")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"timed runs per median (default {REPEATS})")
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULT.relative_to(REPO)}")
    parser.add_argument("--out", type=Path, default=RESULT, help="with --write: the file to write instead")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    precisions = (FP32, BF16) if bf16_supported() else (FP32,)
    module = create(args.model, pretrained=available(SPECS[args.model])).module  # random weights where none ship
    encoder_macs, decoder_macs = macs_per_pixel(module)
    busy = heavy_processes()
    lines = [("| precision | scale | encoder s | decoder s | decoder share | s/MP out | general decoder s | "
              "dense speed-up | MACs/px | floor s/MP | floor / s/MP |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rates = []
    for precision in precisions:
        rate = dense_rate((h, w), precision, args.repeats)
        rates.append(f"{precision} {rate / GIGA:.1f} GMAC/s")
        for scale in (float(s) for s in args.scales.split(",")):
            encoder, decoder, general = split(module, (h, w), scale, precision, args.repeats)
            megapixels = round(h * scale) * round(w * scale) / MEGA
            per_mp = (encoder + decoder) / megapixels
            macs = encoder_macs / scale**2 + decoder_macs
            floor = macs * MEGA / rate
            lines.append(f"| {precision} | ×{scale:g} | {encoder:.3f} | {decoder:.3f} | "
                         f"{decoder / (encoder + decoder):.0%} | {per_mp:.3f} | "
                         f"{general:.3f} | {general / decoder:.2f}× | {macs / KILO:.1f} k | {floor:.3f} | "
                         f"{floor / per_mp:.0%} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    busy += heavy_processes()
    warning = f"\n\n**Warning:** other processes used the CPU ({'; '.join(busy)}): timings are not valid." if busy else ""
    if busy:
        print(warning.strip(), file=sys.stderr)
    machine = torch_machine(torch.get_num_threads())
    command = "python benchmarks/cost_split.py" + " ".join([""] + sys.argv[1:])
    if args.write:
        args.out.write_text(
            f"# Where the time goes on {torch.backends.cpu.get_cpu_capability()}\n\nProduced by `{command}`: `{args.model}` on a "
            f"random {w}×{h} input, median of {args.repeats} runs of its encoder and of its grid decoder over the whole "
            f"output, and of the general decoder (phase-dense path off); MACs/px is the point query's count "
            f"({encoder_macs / KILO:.1f} k per LR pixel in the encoder, {decoder_macs / KILO:.1f} k per output "
            f"pixel in the decoder); the floor is that many MACs at this CPU's dense rate ({', '.join(rates)}: the faster of a 3×3 convolution "
            f"and a GEMM, {RATE_WIDTH} channels, same run).\n\nMachine: {machine}{warning}\n\n{table}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
