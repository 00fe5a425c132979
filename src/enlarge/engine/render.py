"""The engine's entry point: an LR tensor and a target size in, the enlarged tensor out, tile by tile."""

from __future__ import annotations

from collections.abc import Callable

import torch

from enlarge.engine.precision import PRECISIONS, precision_context, resolve_precision
from enlarge.engine.query import QUERY_CHUNK, query_grid
from enlarge.engine.tiling import channels_last_copy, plan_tiles
from enlarge.models.registry import LoadedModel

Progress = Callable[[int, int], None]  # (tiles done, tiles total); may raise to cancel between tiles

__all__ = ["PRECISIONS", "Progress", "precision_context", "render"]


def render(
    model: LoadedModel,
    lr: torch.Tensor,
    out_size: tuple[int, int],
    tile: int | None = None,
    chunk: int = QUERY_CHUNK,
    precision: str | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Enlarge `lr` (1×3×h×w, [0, 1]) to `out_size` (H, W) → 1×3×H×W float32, unclamped.

    `tile` is the core size in LR pixels (None: automatic, whole image when small); tiles overlap by the
    model's receptive field so the result equals the untiled one up to float rounding. `precision` None runs
    the descriptor's default (fp32 where the device lacks native bf16). Tiles are encoded channels-last, the
    faster layout for the CPU convolutions. Everything is built on `lr`'s device (the model's): the output, the
    coordinates and, inside the models, every decoder buffer; only the tile plan stays on the CPU.
    """
    precision = resolve_precision(precision, model.descriptor.default_precision, lr.device)
    plan = plan_tiles(lr.shape[-2:], out_size, tile, model.descriptor.receptive_field)
    out = torch.empty(1, 3, *out_size, device=lr.device)
    rows, cols = plan.rows.to(lr.device), plan.cols.to(lr.device)
    module = model.module
    with torch.inference_mode(), precision_context(precision, lr.device):
        for done, job in enumerate(plan.jobs):
            feats = module.encode(channels_last_copy(job.crop(lr)))
            out[:, :, job.rows, job.cols] = query_grid(
                model, feats, job.frame, rows[job.rows], cols[job.cols], out_size, chunk
            )
            if progress is not None:
                progress(done + 1, len(plan.jobs))
    return out
