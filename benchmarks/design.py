"""Equal-budget proxy runs that choose a design: parameters, MACs per output pixel, CPU time and validation PSNR
of each candidate after the same number of training steps.

    python benchmarks/design.py --family lite --steps 500 [--variants lr1e-3,wide] [--write]
    python benchmarks/design.py --family detail --steps 300 [--write]

Each variant is the family's config (`configs/lite.yaml`, `configs/detail.yaml`) with a few fields changed; runs
go to runs/design/NAME (git-ignored). The `detail` candidates all start from the trained lite, grown exactly
(training/warm_start.py), beside lite itself trained for the same steps: the gain of capacity over more steps.
The validation set is the config's held-out training images, never a benchmark set. CPU times are only
comparable within one run of this script, and only when nothing else is using the CPU (the table says the load
average).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from enlarge.engine import render
from enlarge.models import create
from enlarge.models.macs import count_macs
from enlarge.models.registry import LoadedModel, build, describe, parameter_count
from enlarge.training.config import ModelSection, TrainConfig, load_config
from enlarge.training.loop import train
from enlarge.training.validation_set import load_val_images, validate

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
TIMING_INPUT = 256  # a 256×256 input enlarged ×4: one output megapixel
TIMING_SCALE = 4
TIMING_REPEATS = 3

LITE = {"n_feats": 32, "n_resblocks": 8, "hidden": 64, "head": [32]}
# name → (description, changes to the config; "model_config" replaces the lite settings)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "lr1e-4": ("lite, lr 1e-4 (LIIF's)", {"lr": 1e-4}),
    "lr5e-4": ("lite, lr 5e-4", {"lr": 5e-4}),
    "lr1e-3": ("lite, lr 1e-3 (chosen)", {"lr": 1e-3}),
    "small": ("4 blocks, hidden 32, head [32], lr 1e-3", {"lr": 1e-3, "model_config": {
        **LITE, "n_resblocks": 4, "hidden": 32}}),
    "wide": ("48 channels, head [64], lr 1e-3", {"lr": 1e-3, "model_config": {
        **LITE, "n_feats": 48, "head": [64]}}),
}


DETAIL = {"n_feats": 64, "n_resblocks": 16, "hidden": 64, "head": [64]}
DETAIL_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "lite-more": ("lite itself, the same steps (no growth)", {"model_config": LITE}),
    "64x16": ("64 channels × 16 blocks, head [64] (EDSR-baseline-sized encoder)", {"model_config": DETAIL}),
    "64x16-head32": ("64 × 16, head [32] (lite's decoder width)", {"model_config": {**DETAIL, "head": [32]}}),
    "48x16": ("48 channels × 16 blocks, head [64]", {"model_config": {**DETAIL, "n_feats": 48}}),
    "96x8": ("96 channels × 8 blocks, head [64]", {"model_config": {**DETAIL, "n_feats": 96, "n_resblocks": 8}}),
}
FAMILIES: dict[str, tuple[str, dict[str, tuple[str, dict[str, Any]]]]] = {
    "lite": ("lite.yaml", VARIANTS),
    "detail": ("detail.yaml", DETAIL_VARIANTS),
}


def variant_config(base: TrainConfig, variants: dict[str, tuple[str, dict[str, Any]]], name: str,
                   steps: int) -> TrainConfig:
    _, changes = variants[name]
    changes = dict(changes)
    model_config = changes.pop("model_config", None)
    model = ModelSection(arch="lite", config=model_config) if model_config else base.model
    schedule = {"decay_steps": steps, "warmup_steps": min(base.warmup_steps, steps // 10)} \
        if base.schedule == "cosine" else {}
    return dataclasses.replace(base, model=model, steps=steps, val_every=steps, checkpoint_every=steps,
                               milestones=[], run_dir=str(REPO / "runs" / "design" / name), **schedule, **changes)


def cpu_seconds(loaded: LoadedModel) -> float:
    lr = torch.rand(1, 3, TIMING_INPUT, TIMING_INPUT)
    out = (TIMING_INPUT * TIMING_SCALE, TIMING_INPUT * TIMING_SCALE)
    times = []
    for _ in range(TIMING_REPEATS):
        start = time.perf_counter()
        render(loaded, lr, out)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), default="lite")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--variants", help="comma list of the family's variants (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="training threads (default 2)")
    parser.add_argument("--write", action="store_true", help="write docs/results/design-FAMILY.md")
    args = parser.parse_args()
    config_name, variants = FAMILIES[args.family]
    names = args.variants.split(",") if args.variants else list(variants)
    base = dataclasses.replace(load_config(REPO / "configs" / config_name), threads=args.threads)
    result_path = RESULTS / f"design-{args.family}.md"
    val_images = load_val_images(base)
    bicubic = validate(create("bicubic"), val_images)
    bicubic_mean = sum(bicubic.values()) / len(bicubic)
    rows = []
    for name in names:
        config = variant_config(base, variants, name, args.steps)
        arch, model_config = config.model.resolved()
        result = train(config, f"design-{name}", Path(config.run_dir))
        module = build(arch, model_config)
        state = torch.load(Path(config.run_dir) / "best.pt", map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        loaded = LoadedModel(module.eval(), describe(name, arch, model_config, module, has_weights=True))
        macs = count_macs(module)[f"x{TIMING_SCALE}"]
        rows.append((name, variants[name][0], parameter_count(module), macs, cpu_seconds(loaded),
                     result.best_psnr, result.best_psnr - bicubic_mean))
    load = os.getloadavg()[0]
    lines = [f"| variant | what | parameters | MACs/px ×{TIMING_SCALE} | s per 1 MP out (×4) | val Y-PSNR | vs bicubic |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {d} | {p / 1e3:.0f} k | {m / 1e3:.1f} k | {s:.2f} | {v:.2f} | {g:+.2f} |"
              for n, d, p, m, s, v, g in rows]
    table = "\n".join(lines)
    start = f"from {base.init_from}, " if base.init_from else ""
    summary = (f"{args.steps} steps each ({start}{base.precision}, batch {base.batch_size}, {args.threads} threads, "
               f"schedule {base.schedule}); validation: the config's 8 held-out training "
               f"images at ×2/×3/×4, mean Y-PSNR; bicubic there: {bicubic_mean:.2f} dB. Load average at the end: "
               f"{load:.2f} on {os.cpu_count()} cores.")
    print(summary + "\n\n" + table)
    if args.write:
        result_path.write_text(f"# Design of `{args.family}`\n\nProduced by `python benchmarks/design.py --family "
                               f"{args.family} --steps {args.steps} --variants {','.join(names)} --write`. "
                               f"{summary}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
