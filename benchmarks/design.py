"""Equal-budget proxy runs that choose the `lite` design: parameters, MACs per output pixel, CPU time and
validation PSNR of each candidate after the same number of training steps.

    python benchmarks/design.py --steps 500 [--variants lr1e-3,wide] [--write]

Each variant is `configs/lite.yaml` with a few fields changed; runs go to runs/design/NAME (git-ignored). The
validation set is the config's held-out training images, never a benchmark set. CPU times are only comparable
within one run of this script, and only when nothing else is using the CPU (the table says the load average).
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
from enlarge.training.loop import load_val_images, train, validate

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "lite.yaml"
RESULT = REPO / "docs" / "results" / "design.md"
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


def variant_config(base: TrainConfig, name: str, steps: int) -> TrainConfig:
    _, changes = VARIANTS[name]
    changes = dict(changes)
    model_config = changes.pop("model_config", None)
    model = ModelSection(arch="lite", config=model_config) if model_config else base.model
    return dataclasses.replace(base, model=model, steps=steps, val_every=steps, checkpoint_every=steps,
                               milestones=[], run_dir=str(REPO / "runs" / "design" / name), **changes)


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
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    args = parser.parse_args()
    base = load_config(CONFIG)
    val_images = load_val_images(base)
    bicubic = validate(create("bicubic"), val_images)
    bicubic_mean = sum(bicubic.values()) / len(bicubic)
    rows = []
    for name in args.variants.split(","):
        config = variant_config(base, name, args.steps)
        arch, model_config = config.model.resolved()
        result = train(config, f"design-{name}", Path(config.run_dir))
        module = build(arch, model_config)
        state = torch.load(Path(config.run_dir) / "best.pt", map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        loaded = LoadedModel(module.eval(), describe(name, arch, model_config, module, has_weights=True))
        macs = count_macs(module)[f"x{TIMING_SCALE}"]
        rows.append((name, VARIANTS[name][0], parameter_count(module), macs, cpu_seconds(loaded),
                     result.best_psnr, result.best_psnr - bicubic_mean))
    load = os.getloadavg()[0]
    lines = [f"| variant | what | parameters | MACs/px ×{TIMING_SCALE} | s per 1 MP out (×4) | val Y-PSNR | vs bicubic |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {d} | {p / 1e3:.0f} k | {m / 1e3:.1f} k | {s:.2f} | {v:.2f} | {g:+.2f} |"
              for n, d, p, m, s, v, g in rows]
    table = "\n".join(lines)
    summary = (f"{args.steps} steps each (bf16, batch 16, 2 threads); validation: the config's 8 held-out training "
               f"images at ×2/×3/×4, mean Y-PSNR; bicubic there: {bicubic_mean:.2f} dB. Load average at the end: "
               f"{load:.2f} on {os.cpu_count()} cores.")
    print(summary + "\n\n" + table)
    if args.write:
        RESULT.write_text("# Design of `lite`\n\nProduced by `python benchmarks/design.py --steps "
                          f"{args.steps} --variants {args.variants} --write`. {summary}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
