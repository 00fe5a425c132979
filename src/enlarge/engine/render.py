"""The engine's entry point: an LR tensor and a target size in, the enlarged tensor out, tile by tile."""

from __future__ import annotations

from collections.abc import Callable

import torch

from enlarge.engine.precision import PRECISIONS, precision_context, resolve_precision
from enlarge.engine.query import QUERY_CHUNK, Frame, output_axis, query_grid
from enlarge.engine.tiling import auto_tile, owned_range, spans
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
    faster layout for the CPU convolutions.
    """
    precision = resolve_precision(precision, model.descriptor.default_precision, lr.device)
    _, _, h, w = lr.shape
    big_h, big_w = out_size
    tile = tile if tile is not None else auto_tile(h, w)
    tile = tile or max(h, w)
    margin = model.descriptor.receptive_field
    rows, cols = output_axis(big_h), output_axis(big_w)
    rows_lr, cols_lr = (rows + 1) / 2 * h, (cols + 1) / 2 * w
    out = torch.empty(1, 3, big_h, big_w)
    plan = [(sy, sx) for sy in spans(h, tile, margin) for sx in spans(w, tile, margin)]
    module = model.module
    with torch.inference_mode(), precision_context(precision, lr.device):
        for done, (sy, sx) in enumerate(plan):
            r0, r1 = owned_range(rows_lr, sy)
            c0, c1 = owned_range(cols_lr, sx)
            if r1 > r0 and c1 > c0:
                crop = lr[:, :, sy.pad_start : sy.pad_stop, sx.pad_start : sx.pad_stop]
                frame = Frame(sy.pad_start, sx.pad_start, crop.shape[2], crop.shape[3], (h, w))
                feats = module.encode(crop.contiguous(memory_format=torch.channels_last))
                out[:, :, r0:r1, c0:c1] = query_grid(
                    module, feats, frame, rows[r0:r1], cols[c0:c1], out_size, chunk
                )
            if progress is not None:
                progress(done + 1, len(plan))
    return out
