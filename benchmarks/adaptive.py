"""Little–Big adaptive enlargement: speed against PSNR as the routing threshold sweeps, and `--model auto`'s budgets.

    python benchmarks/adaptive.py                               # bundled lite, every image, print the tables
    python benchmarks/adaptive.py --model PATH --limit 3        # another model, 3 images per set
    python benchmarks/adaptive.py --write                       # also docs/results/adaptive.md and adaptive.png
    python benchmarks/adaptive.py --model detail --sets Set14,B100 --scales 4 --limit 5 --budgets ""
                                                                # detail against its little model, lite

For each benchmark set (Set14, B100, Urban100 under ../shared/data/benchmark) and scale, every image goes through
the SR protocol of `enlarge eval` (HR cropped to a multiple of the scale, MATLAB-bicubic LR, output rounded to
8 bits, Y-PSNR with shave = scale) with the little model alone (the big model's companion: bicubic for lite,
lite for detail), the big model alone, and the adaptive
blend at each threshold of the model's calibration: the distinct per-bin expected gains at that scale, from
"route nothing" to "route every bin big is expected to help", plus the calibrated default. A model without a
calibration is swept over route fractions instead (a check that the script runs, not a result). Time is the wall
time of the render (the fastest of `--repeats`; run on a quiet machine); points no other point beats on both
time and PSNR are marked Pareto-optimal.

Then `auto`: per image and time budget, the choice between little and big from a speed profile measured here,
the render timed, and how often it met the budget. `--write` refuses models without a training record (random
weights), and warns when the load average says another process competes for the CPU.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
from machine_info import cpu_summary  # beside this script

from enlarge.autoselect import Profile, Selector, measure
from enlarge.engine import render
from enlarge.engine.adaptive import (
    BlockErrors,
    Routing,
    RoutingCalibration,
    block_scores,
    errors_of_renders,
    little_model,
    render_adaptive,
    route_blocks,
    routing_geometry,
)
from enlarge.evaluation import LEVELS, Settings, find_dataset, load_pair, to_uint8
from enlarge.fileutil import atomic_write_bytes, atomic_write_text
from enlarge.metrics import psnr
from enlarge.models.registry import LoadedModel, load_model

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "benchmark"
RESULTS = REPO / "docs" / "results"
DEFAULT_MODEL = "lite"  # its results are adaptive.md; another model's adaptive-NAME.md
SETS = "Set14,B100,Urban100"
SCALES = "2,4"
BUDGETS = "0.25,1,4"  # seconds per image given to `auto`
FRACTIONS = (0.1, 0.2, 0.3, 0.5, 0.7)  # the sweep of a model without a calibration
ORACLE_STEP = 0.05  # route fractions the ground-truth oracle is tried at
ORACLE_LOSS_DB = 0.05  # the PSNR loss against big-only the oracle bound is stated for (the tolerance)
BUSY_LOAD = 0.5  # load average per core above which timings are not valid
PLOT_DPI = 120
PANEL = (4.0, 3.2)  # inches per panel

T = TypeVar("T")


@dataclass
class Point:
    """One operating point on one set at one scale: per-image PSNR, seconds and routed share."""

    label: str
    threshold: float | None = None
    psnr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    routed: list[float] = field(default_factory=list)
    decoded: list[float] = field(default_factory=list)
    encoded: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Oracle:
    """The ground-truth bound on one set at one scale: the smallest share of blocks that routing by big's true
    gain per block must send to big to stay within ORACLE_LOSS_DB of big-only, and the PSNR it gets there."""

    fraction: float
    psnr: float


def oracle_bound(errors: list[BlockErrors]) -> Oracle:
    """The smallest oracle route fraction (in steps of ORACLE_STEP) whose mean Y-PSNR is within ORACLE_LOSS_DB of
    big-only on these images."""
    big = mean([e.psnr() for e in errors])
    steps = round(1 / ORACLE_STEP)
    for k in range(steps + 1):
        fraction = k / steps
        psnr = mean([e.psnr(e.oracle(fraction)) for e in errors])
        if big - psnr <= ORACLE_LOSS_DB:
            return Oracle(fraction, psnr)
    return Oracle(1.0, big)


@dataclass
class AutoRow:
    """`auto` under one budget on one set at one scale."""

    budget: float
    met: int = 0
    big: int = 0
    images: int = 0
    psnr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def timed(run: Callable[..., T], *args: object, repeats: int = 1, **kwargs: object) -> tuple[T, float]:
    """`run(*args, **kwargs)` and its wall time in seconds, the fastest of `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        value = run(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return value, best


def score(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    """Y-PSNR of the 8-bit-rounded SR against the HR, shave = scale (the protocol of `enlarge eval`)."""
    return psnr(to_uint8(sr[0]).double() / LEVELS, hr.double() / LEVELS, scale, "y")


def sweep(
    calibration: RoutingCalibration | None, scale: int, fractions: tuple[float, ...] = ()
) -> list[tuple[str, Routing]]:
    """The adaptive operating points at `scale`: `fractions` (ranked by expected gain), then the calibration's
    thresholds; route fractions FRACTIONS without a calibration."""
    if calibration is None:
        return [(f"fraction {f:g}", Routing(route_fraction=f)) for f in fractions or FRACTIONS]
    gains = sorted({round(float(g), 6) for g in calibration.bin_gains(scale) if g > 0}, reverse=True)
    points = [(f"fraction {f:g}", Routing(route_fraction=f)) for f in fractions]
    points += [(f"threshold {t:.3g}", Routing(threshold=t)) for t in [*gains[1:], 0.0]]
    default = calibration.threshold(scale)
    return [*points, (f"default {default:.3g}", Routing(threshold=default))]


def run_set(
    big: LoadedModel, little: LoadedModel, folder: Path, scale: int, limit: int | None, budgets: list[float],
    profile: Profile, repeats: int = 1, fractions: tuple[float, ...] = (),
) -> tuple[list[Point], list[AutoRow], Oracle]:
    """Every operating point, every budget and the oracle bound over one set at one scale."""
    settings = Settings(scales=(scale,), limit=limit)
    dataset = find_dataset(folder, limit)
    calibration = RoutingCalibration.of(big.descriptor)
    routes = sweep(calibration, scale, fractions)
    block, _ = routing_geometry(big.descriptor, calibration)
    points = [Point(f"little ({little.descriptor.name})"), *(Point(label, r.threshold) for label, r in routes),
              Point(f"big ({big.descriptor.name})")]
    autos = [AutoRow(b) for b in budgets]
    selectors = [Selector([little, big], profile, b) for b in budgets]
    errors = []
    for hr_path in dataset.images:
        hr, lr8 = load_pair(dataset, hr_path, scale, settings)
        lr = lr8.unsqueeze(0).float() / LEVELS
        size = (hr.shape[-2], hr.shape[-1])
        small, seconds = timed(render, little, lr, size, repeats=repeats)
        points[0].psnr.append(score(small, hr, scale))
        points[0].seconds.append(seconds)
        points[0].routed.append(0.0)
        points[0].decoded.append(0.0)
        points[0].encoded.append(0.0)
        scores = block_scores(lr, block)
        done: dict[bytes, tuple[float, ...]] = {}  # thresholds that route alike render alike
        for point, (_, routing) in zip(points[1:-1], routes):
            key = route_blocks(scores, routing, calibration, scale).numpy().tobytes()
            if key not in done:
                out, seconds = timed(render_adaptive, big, lr, size, routing, repeats=repeats, little=little)
                done[key] = (score(out.image, hr, scale), seconds, out.routed, out.decoded, out.encoded)
            columns = (point.psnr, point.seconds, point.routed, point.decoded, point.encoded)
            for values, value in zip(columns, done[key]):
                values.append(value)
        sr, seconds = timed(render, big, lr, size, repeats=repeats)
        errors.append(errors_of_renders(sr, small, lr, hr.unsqueeze(0).float() / LEVELS, block))
        points[-1].psnr.append(score(sr, hr, scale))
        points[-1].seconds.append(seconds)
        points[-1].routed.append(1.0)
        points[-1].decoded.append(1.0)
        points[-1].encoded.append(1.0)
        for row, chooser in zip(autos, selectors):
            choice = chooser.choose(lr, size)
            sr, seconds = timed(render, choice.model, lr, size)
            row.images += 1
            row.met += seconds <= row.budget
            row.big += choice.model is big
            row.psnr.append(score(sr, hr, scale))
            row.seconds.append(seconds)
        print(f"{dataset.name} ×{scale} {hr_path.name}: little {points[0].psnr[-1]:.2f} dB, "
              f"big {points[-1].psnr[-1]:.2f} dB", file=sys.stderr)
    return points, autos, oracle_bound(errors)


def pareto(points: list[Point]) -> set[int]:
    """Indices of points that no other point beats on both mean time and mean PSNR."""
    means = [(mean(p.seconds), mean(p.psnr)) for p in points]
    return {
        i for i, (t, q) in enumerate(means)
        if not any((t2 <= t and q2 >= q) and (t2, q2) != (t, q) for t2, q2 in means)
    }


def tables(results: dict[tuple[str, int], tuple[list[Point], list[AutoRow], Oracle]]) -> str:
    """The Markdown tables: one sweep table per set and scale, then the `auto` budgets."""
    lines = []
    for (name, scale), (points, _, oracle) in results.items():
        big_time = mean(points[-1].seconds)
        little_psnr = mean(points[0].psnr)
        best = pareto(points)
        lines += [f"### {name} ×{scale} ({len(points[0].psnr)} images)", "",
                  "| point | routed | decoded | big encoded | s / image | time vs big | Y-PSNR | vs little | Pareto |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|:-:|"]
        for i, p in enumerate(points):
            seconds = mean(p.seconds)
            lines.append(
                f"| {p.label} | {mean(p.routed):.0%} | {mean(p.decoded):.0%} | {mean(p.encoded):.0%} | {seconds:.3f} | "
                f"{seconds / big_time:.2f} | {mean(p.psnr):.2f} | {mean(p.psnr) - little_psnr:+.2f} | "
                f"{'✓' if i in best else ''} |"
            )
        lines += ["", f"Oracle bound: routing the blocks where big's true gain is largest (known only from the ground "
                  f"truth) must route {oracle.fraction:.0%} of them to stay within {ORACLE_LOSS_DB} dB of big-only "
                  f"(block-table PSNR without border shave: {oracle.psnr:.2f} dB), so no score can route fewer.", ""]
    if not any(autos for _, autos, _ in results.values()):
        return "\n".join(lines) + "\n"
    lines += ["### `auto` under a time budget", "",
              "| set | scale | budget s | met | chose big | Y-PSNR | s / image |", "|---|---:|---:|---:|---:|---:|---:|"]
    for (name, scale), (_, autos, _) in results.items():
        for row in autos:
            lines.append(
                f"| {name} | ×{scale} | {row.budget:g} | {row.met}/{row.images} ({row.met / row.images:.0%}) | "
                f"{row.big / row.images:.0%} | {statistics.fmean(row.psnr):.2f} | {statistics.fmean(row.seconds):.3f} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict[tuple[str, int], tuple[list[Point], list[AutoRow], Oracle]]) -> bytes:
    """PSNR against time relative to big-only, one panel per set and scale, Pareto points joined."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(PANEL[0] * len(results), PANEL[1]))
    axes = figure.subplots(1, len(results), squeeze=False)[0]
    for ax, ((name, scale), (points, _, _)) in zip(axes, results.items()):
        big_time = mean(points[-1].seconds)
        xs = [mean(p.seconds) / big_time for p in points]
        ys = [mean(p.psnr) for p in points]
        ax.scatter(xs[1:-1], ys[1:-1], s=14, label="adaptive")
        ax.scatter([xs[0], xs[-1]], [ys[0], ys[-1]], marker="s", color="black", label="little / big")
        front = sorted(pareto(points), key=lambda i: xs[i])
        ax.plot([xs[i] for i in front], [ys[i] for i in front], color="tab:orange", label="Pareto")
        ax.set_title(f"{name} ×{scale}")
        ax.set_xlabel("time relative to big-only")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Y-PSNR (dB)")
    axes[-1].legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PLOT_DPI)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registered name or weights file (default %(default)s)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding the benchmark sets")
    parser.add_argument("--sets", default=SETS, help="comma-separated set folders (default %(default)s)")
    parser.add_argument("--scales", default=SCALES, help="comma-separated integer scales (default %(default)s)")
    parser.add_argument("--limit", type=int, help="images per set (default: all)")
    parser.add_argument("--budgets", default=BUDGETS,
                        help="seconds per image for auto (default %(default)s; empty: no auto rows)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=1, help="time each render this many times, keep the fastest")
    parser.add_argument("--fractions", default="",
                        help="route fractions to sweep as well as the calibration's thresholds, e.g. 0.1,0.25")
    parser.add_argument("--write", action="store_true",
                        help="write docs/results/adaptive.md (another model: adaptive-NAME.md) and the plot")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    big = load_model(args.model)
    if args.write and not (big.descriptor.card and big.descriptor.card.training):
        print(f"error: {args.model} has no training record in its card; results of untrained weights are not "
              "written", file=sys.stderr)
        return 2
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    warning = f"load average {load:.2f} per core: another process used the CPU, timings are not valid"
    if load > BUSY_LOAD:
        print(f"warning: {warning}", file=sys.stderr)
    little = little_model(big)
    profile = measure([little, big])  # also warms both models up before anything is timed
    budgets = [float(b) for b in args.budgets.split(",") if b]
    results = {}
    for name in args.sets.split(","):
        for scale in (int(s) for s in args.scales.split(",")):
            results[(name, scale)] = run_set(
                big, little, args.data / name, scale, args.limit, budgets, profile, args.repeats,
                tuple(float(f) for f in args.fractions.split(",") if f),
            )
    text = tables(results)
    machine = f"{cpu_summary()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    calibrated = RoutingCalibration.of(big.descriptor) is not None
    print(text)
    stem = "adaptive" if big.descriptor.name == DEFAULT_MODEL else f"adaptive-{big.descriptor.name}"
    result, plot_path = RESULTS / f"{stem}.md", RESULTS / f"{stem}.png"
    if args.write:
        command = shlex.join(["python", "benchmarks/adaptive.py", *sys.argv[1:]])
        note = f"\n**Warning:** {warning}\n" if load > BUSY_LOAD else ""
        atomic_write_text(result, (
            f"# Adaptive enlargement (Little–Big){'' if stem == 'adaptive' else f': {big.descriptor.name}'}\n\n"
            f"Produced by `{command}` with model `{big.descriptor.name}` ({big.descriptor.source}, "
            f"{big.descriptor.card.training.get('steps', '?')} training steps); "
            f"{'thresholds from its calibration' if calibrated else 'uncalibrated: route fractions'}. "
            f"Little = {little.descriptor.name} (the model's companion), big = the model; adaptive runs the big "
            "model only on routed regions; *big encoded*: the big encoder's LR pixels against its plain render's. "
            "Y-PSNR with shave = scale on 8-bit outputs; wall time per image.\n\n"
            f"Machine: {machine}\n{note}\n![speed against PSNR]({plot_path.name})\n\n" + text
        ))
        atomic_write_bytes(plot_path, plot(results))
        print(f"wrote {result.relative_to(REPO)} and {plot_path.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
