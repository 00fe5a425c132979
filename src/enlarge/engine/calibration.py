"""Precision calibration: does a model keep its quality in bf16? Measured once per model, kept in its card.

`enlarge calibrate` renders the held-out validation images (never a benchmark set) in fp32 and in bf16 and makes
bf16 the model's default only if it costs at most DEFAULT_MAX_LOSS_DB of mean Y-PSNR at every scale.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from enlarge.engine import precision
from enlarge.engine.precision import BF16, FP32, PRECISIONS
from enlarge.engine.render import render
from enlarge.errors import EnlargeError
from enlarge.metrics import psnr
from enlarge.models.registry import LoadedModel

DEFAULT_MAX_LOSS_DB = 0.02


@dataclass(frozen=True)
class CalibrationImage:
    """One held-out image at one scale: the LR to enlarge and the HR to score against."""

    name: str
    lr: torch.Tensor  # 1×3×h×w in [0, 1]
    hr: torch.Tensor  # 1×3×H×W in [0, 1]
    scale: int


@dataclass(frozen=True)
class PrecisionCalibration:
    """What `calibrate` measured and decided; `record()` is what the model card keeps."""

    decision: str
    max_loss_db: float
    loss_db: dict[str, float]  # by scale ("x2"): mean fp32 Y-PSNR minus mean bf16 Y-PSNR
    psnr: dict[str, dict[str, float]]  # precision → scale → mean Y-PSNR
    seconds: dict[str, float]  # precision → total render time (wall clock, as loaded as the machine was)
    renders: int  # (image, scale) pairs measured

    def record(self) -> dict[str, Any]:
        """The card's `extra["precision_calibration"]`: the measurement, its rule, and where it was taken."""
        return {
            **dataclasses.asdict(self),
            "rule": f"bf16 if its Y-PSNR loss vs fp32 is <= {self.max_loss_db} dB at every scale",
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        }


def calibrate(
    model: LoadedModel, images: list[CalibrationImage], max_loss_db: float = DEFAULT_MAX_LOSS_DB, device: str = "cpu"
) -> PrecisionCalibration:
    """Render `images` in fp32 and in bf16 and decide the model's default precision from the Y-PSNR loss.

    Needs native bf16 on `device` (emulated bf16 would time a machine that never runs it). Scores as the
    training validation does: the unrounded output clamped to [0, 1], Y-PSNR, shave = scale.
    """
    if not images:
        raise EnlargeError("calibration needs at least one validation image")
    if not precision.bf16_supported(torch.device(device).type):
        raise EnlargeError(f"this {device} has no native bf16 (AVX512-BF16 or AMX); calibrate on one that has")
    scores: dict[str, dict[str, list[float]]] = {p: {} for p in PRECISIONS}
    seconds = {}
    for mode in PRECISIONS:
        start = time.perf_counter()
        for image in images:
            out_size = (image.hr.shape[-2], image.hr.shape[-1])
            sr = render(model, image.lr.to(device), out_size, precision=mode).clamp(0, 1)
            value = psnr(sr, image.hr, shave=image.scale, metric="y")
            scores[mode].setdefault(f"x{image.scale}", []).append(value)
        seconds[mode] = round(time.perf_counter() - start, 3)
    means = {mode: {k: statistics.fmean(v) for k, v in by_scale.items()} for mode, by_scale in scores.items()}
    loss = {k: means[FP32][k] - means[BF16][k] for k in means[FP32]}
    decision = BF16 if max(loss.values()) <= max_loss_db else FP32
    return PrecisionCalibration(decision, max_loss_db, loss, means, seconds, len(images))
