"""Little–Big calibration fitting: per-block errors of big and little on training images → the lookup table and
its default threshold (`RoutingCalibration`), as `enlarge calibrate-adaptive` stores it in the card.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from enlarge.engine.adaptive.routing import (
    BLOCK,
    RoutingCalibration,
    ScaleTable,
    block_scores,
    blocks_of,
    effective_scale,
)
from enlarge.engine.query import output_axis
from enlarge.engine.render import render
from enlarge.errors import ModelError
from enlarge.metrics import PEAK, rgb_to_y
from enlarge.models.registry import LoadedModel

N_BINS = 16  # score bins of the lookup table, equally populated on the calibration data


RETAINED_GAIN = 0.95  # the default threshold keeps this share of big's PSNR gain over little (calibration data)


MIN_MSE = 1e-10  # guards PSNR against an exact match


@dataclass(frozen=True)
class BlockErrors:
    """One calibration image at one scale: each block's score, squared Y error (8-bit levels²) summed over its
    output pixels for little and for big, and its output pixel count (flattened blocks)."""

    scale: float
    scores: torch.Tensor
    sse_little: torch.Tensor
    sse_big: torch.Tensor
    pixels: torch.Tensor
    block: int = BLOCK  # LR pixels per side of a block

    def psnr(self, routed: torch.Tensor | None = None) -> float:
        """Image PSNR (Y) with the `routed` blocks from big and the rest from little (None: big everywhere)."""
        sse = self.sse_big if routed is None else torch.where(routed, self.sse_big, self.sse_little)
        mse = max(float(sse.sum() / self.pixels.sum()), MIN_MSE)
        return 10 * math.log10(PEAK**2 / mse)

    def oracle(self, fraction: float) -> torch.Tensor:
        """The `fraction` of blocks where big's true error reduction (known from the ground truth) is largest: the
        routing no score computed from the input can beat at that share, a bound for any router."""
        order = torch.argsort(self.sse_little - self.sse_big, descending=True, stable=True)
        routed = torch.zeros_like(self.scores, dtype=torch.bool)
        routed[order[: round(fraction * len(order))]] = True
        return routed


def block_errors(
    model: LoadedModel, little: LoadedModel, lr: torch.Tensor, hr: torch.Tensor, block: int = BLOCK
) -> BlockErrors:
    """Render `lr` (1×3×h×w) with big and little at the size of `hr` (1×3×H×W, 8-bit levels in [0, 1]) and
    measure their errors per routing block of `block` LR pixels (`errors_of_renders`)."""
    out_size = (hr.shape[-2], hr.shape[-1])
    return errors_of_renders(render(model, lr, out_size), render(little, lr, out_size), lr, hr, block)


def errors_of_renders(
    big: torch.Tensor, small: torch.Tensor, lr: torch.Tensor, hr: torch.Tensor, block: int = BLOCK
) -> BlockErrors:
    """The big and little renders of `lr` at the size of `hr`, rounded to 8 bits as the SR protocol does, and
    each one's squared Y error summed per routing block."""
    out_size = (hr.shape[-2], hr.shape[-1])
    rows, cols = output_axis(out_size[0]), output_axis(out_size[1])
    scores = block_scores(lr, block)
    hb, wb = scores.shape
    block_rows = blocks_of((rows + 1) / 2 * lr.shape[-2], hb, block)
    block_cols = blocks_of((cols + 1) / 2 * lr.shape[-1], wb, block)
    ids = (block_rows[:, None] * wb + block_cols[None, :]).flatten()
    reference = rgb_to_y(hr[0])

    def sse(image: torch.Tensor) -> torch.Tensor:
        quantised = (image[0].clamp(0, 1) * PEAK).round() / PEAK
        error = (rgb_to_y(quantised) - reference).square().flatten()
        return torch.zeros(hb * wb, dtype=torch.float64).index_add_(0, ids, error)

    pixels = torch.bincount(ids, minlength=hb * wb).double()
    scale = effective_scale((lr.shape[-2], lr.shape[-1]), out_size)
    return BlockErrors(scale, scores.flatten().double(), sse(small), sse(big), pixels, block)


def fit_calibration(samples: Sequence[BlockErrors], little: str, data: dict[str, Any]) -> RoutingCalibration:
    """The lookup table from calibration images: N_BINS equally populated score bins (over every sample), mean
    MSE of little and big per bin and scale, and per scale the default threshold (see `tune_threshold`)."""
    if not samples:
        raise ModelError("no calibration images: nothing to fit the adaptive lookup on")
    if len({s.block for s in samples}) > 1:
        raise ModelError("calibration samples were measured on different block sizes")
    scores = torch.cat([s.scores for s in samples])
    quantiles = torch.linspace(0, 1, N_BINS + 1, dtype=torch.float64)[1:-1]
    edges = tuple(torch.unique(torch.quantile(scores, quantiles)).tolist())
    bins = len(edges) + 1
    edge_tensor = torch.tensor(edges, dtype=torch.float64)
    tables = {}
    for scale in sorted({s.scale for s in samples}):
        group = [s for s in samples if s.scale == scale]
        index = torch.cat([torch.bucketize(s.scores, edge_tensor) for s in group])
        pixels = torch.bincount(index, torch.cat([s.pixels for s in group]), minlength=bins)
        mse = [
            _fill_empty(torch.bincount(index, torch.cat([getattr(s, name) for s in group]), minlength=bins), pixels)
            for name in ("sse_little", "sse_big")
        ]
        gains = mse[0] - mse[1]
        block_gains = [gains[torch.bucketize(s.scores, edge_tensor)] for s in group]
        threshold, summary = tune_threshold(group, block_gains)
        tables[scale] = ScaleTable(tuple(mse[0].tolist()), tuple(mse[1].tolist()), threshold, summary)
    return RoutingCalibration(edges, tables, little, samples[0].block, data)


def tune_threshold(group: Sequence[BlockErrors], gains: Sequence[torch.Tensor]) -> tuple[float, dict[str, float]]:
    """The largest threshold on expected gain (fewest routed blocks) whose routing keeps RETAINED_GAIN of big's
    mean PSNR gain over little on these images, and a summary of what it does there. Only thresholds ≥ 0 are
    considered: routing a block where big is expected to be worse never helps.
    """
    psnr_little = sum(s.psnr(torch.zeros_like(s.scores, dtype=torch.bool)) for s in group) / len(group)
    psnr_big = sum(s.psnr() for s in group) / len(group)
    candidates = sorted({0.0, *(float(g) for g in torch.cat(list(gains)).unique() if g > 0)}, reverse=True)
    chosen, psnr_chosen = 0.0, psnr_big
    for threshold in candidates:
        psnr = sum(s.psnr(g > threshold) for s, g in zip(group, gains)) / len(group)
        chosen, psnr_chosen = threshold, psnr
        if psnr - psnr_little >= RETAINED_GAIN * (psnr_big - psnr_little):
            break
    routed = sum(float(s.pixels[g > chosen].sum()) for s, g in zip(group, gains))
    total = sum(float(s.pixels.sum()) for s in group)
    summary = {"psnr_little": psnr_little, "psnr_big": psnr_big, "psnr_adaptive": psnr_chosen,
               "routed": routed / total, "images": float(len(group))}
    return chosen, summary


def _fill_empty(sums: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Per-bin means `sums / pixels`; a bin with no pixels takes the mean of the nearest bin that has some."""
    filled = torch.nonzero(pixels > 0).squeeze(1)
    nearest = filled[(torch.arange(len(pixels))[:, None] - filled[None, :]).abs().argmin(dim=1)]
    return sums[nearest] / pixels[nearest]
