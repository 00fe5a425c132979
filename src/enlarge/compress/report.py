"""What a compression run reports: CPU time measured side by side, and the Markdown results section.

CPU time is the median of repeated engine renders of one random image, the uncompressed and compressed model
interleaved so that load from other processes hits both alike; the load average is recorded with it, since a busy
CPU (a training run, say) makes the absolute times and even their ratio unreliable.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from enlarge.engine import render
from enlarge.models import LoadedModel

TIME_LR_SIZE = (256, 256)  # (h, w) of the LR the timing renders
TIME_SCALE = 4
TIME_SEED = 0
BUSY_LOAD = 0.5  # load average per core above which another process is likely competing for the CPU


def cpu_times(models: Sequence[LoadedModel], repeats: int) -> dict[str, Any]:
    """Median seconds per render of a random `TIME_LR_SIZE` image at ×`TIME_SCALE`, for each model (in order),
    with the conditions of the measurement."""
    gen = torch.Generator().manual_seed(TIME_SEED)
    lr = torch.rand(1, 3, *TIME_LR_SIZE, generator=gen)
    out_size = (TIME_LR_SIZE[0] * TIME_SCALE, TIME_LR_SIZE[1] * TIME_SCALE)
    load_before = os.getloadavg()[0] / (os.cpu_count() or 1)
    for model in models:  # warm-up: first-call allocations and kernel selection
        render(model, lr, out_size, precision=model.descriptor.default_precision)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for model, samples in zip(models, times):
            start = time.perf_counter()
            render(model, lr, out_size, precision=model.descriptor.default_precision)
            samples.append(time.perf_counter() - start)
    load = max(load_before, os.getloadavg()[0] / (os.cpu_count() or 1))
    return {
        "median_s": [statistics.median(samples) for samples in times],
        "lr_size": list(TIME_LR_SIZE),
        "scale": TIME_SCALE,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "load_per_core": round(load, 2),
        "contended": load > BUSY_LOAD,
    }


def markdown(summary: dict[str, Any], command: str) -> str:
    """The `docs/results/compression.md` section from a card's `extra["compression"]`."""
    teacher, after = summary["teacher"], summary["compressed"]
    timing = summary["cpu_time"]
    scales = list(teacher["macs_per_output_pixel"])
    size = f"{timing['lr_size'][1]}×{timing['lr_size'][0]} ×{timing['scale']}"
    finetune = summary["finetune"]
    method = (
        "EASIER depth reduction (Quétu et al., arXiv 2404.18949): the ReLU with the lowest mean binary entropy of "
        "its on/off state over training batches becomes identity, the model is fine-tuned (L1 to the ground truth "
        f"plus {finetune['distill']} × L1 to the uncompressed model, {finetune['steps']} steps at lr "
        f"{finetune['lr']:g}) and kept if the validation Y-PSNR stays within {summary['max_psnr_drop_db']} dB; a "
        "residual block that went linear is then dropped if the fine-tune recovers it; exact merges of adjacent "
        "linear layers follow where they save MACs."
    )
    lines = [
        f"# Compression: `{after['name']}`",
        "",
        f"Produced by `{command}`.",
        "",
        method,
        "",
        "| model | ReLUs | parameters | " + " | ".join(f"MACs/px {s}" for s in scales)
        + f" | CPU s ({size}) | val Y-PSNR |",
        "|---|---:|---:|" + "---:|" * len(scales) + "---:|---:|",
    ]
    for row in (teacher, after):
        macs = " | ".join(f"{row['macs_per_output_pixel'][s] / 1e3:.1f} k" for s in scales)
        lines.append(f"| {row['name']} | {row['relus']} | {row['parameters']:,} | {macs} | "
                     f"{row['cpu_time_s']:.3f} | {row['val_psnr_y']:.3f} |")
    lines += [
        "",
        f"CPU time: median of {timing['repeats']} interleaved renders (threads: {timing['threads']}, cores: "
        f"{timing['cores']}, load average {timing['load_per_core']} per core)"
        + (" — **the CPU was busy: the times are not reliable**." if timing["contended"] else ".")
        + ("" if timing["before_merges_s"] is None else
           f" The compressed model before its exact merges: {timing['before_merges_s']:.3f} s."),
        "",
        "| round | move | layer | entropy (bits) | val Y-PSNR | Δ vs uncompressed (dB) | kept |",
        "|---:|---|---|---:|---:|---:|---|",
    ]
    for r in summary["rounds"]:
        entropy = "" if r["entropy"] is None else f"{r['entropy']:.4f}"
        lines.append(f"| {r['round']} | {r['kind']} | `{r['target']}` | {entropy} | {r['val_psnr_y']:.3f} | "
                     f"{-r['drop_db']:+.3f} | {'yes' if r['accepted'] else 'no'} |")
    lines += ["", f"Stopped: {summary['stop_reason']}."]
    if summary["merged"]:
        lines += ["", "Exact merges: " + "; ".join(f"{m['merged']} (largest output change {m['max_abs_change']:.1e})"
                                                  for m in summary["merged"]) + "."]
    if summary["benchmarks"]:
        header = f"| dataset | scale | {teacher['name']} PSNR / SSIM | {after['name']} PSNR / SSIM | Δ PSNR |"
        lines += ["", header, "|---|---:|---:|---:|---:|"]
        for b in summary["benchmarks"]:
            lines.append(f"| {b['dataset']} | ×{b['scale']} | {b['before_psnr']:.2f} / {b['before_ssim']:.4f} | "
                         f"{b['after_psnr']:.2f} / {b['after_ssim']:.4f} | {b['after_psnr'] - b['before_psnr']:+.2f} |")
    return "\n".join(lines) + "\n"
