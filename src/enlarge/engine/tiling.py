"""Tiles of the LR input: each tile is encoded with a margin of the model's receptive field, so the output
pixels whose centres fall in its core come out as if the whole image had been encoded at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Inputs up to this many pixels are encoded whole when no tile size is given.
AUTO_TILE_MAX_PIXELS = 512 * 512
AUTO_TILE = 384  # core size (LR pixels) of automatic tiles


@dataclass(frozen=True)
class Span:
    """One axis of a tile: core `[start, stop)` and the encoded range `[pad_start, pad_stop)`."""

    start: int
    stop: int
    pad_start: int
    pad_stop: int


def spans(length: int, tile: int, margin: int) -> list[Span]:
    """Cut `length` into cores of at most `tile`, each widened by `margin` (clipped to the image)."""
    out = []
    for start in range(0, length, tile):
        stop = min(start + tile, length)
        out.append(Span(start, stop, max(0, start - margin), min(length, stop + margin)))
    return out


def auto_tile(h: int, w: int) -> int | None:
    """The tile size used when none is given: None (whole image) for small inputs."""
    return None if h * w <= AUTO_TILE_MAX_PIXELS else AUTO_TILE


def owned_range(centres_lr: torch.Tensor, span: Span) -> tuple[int, int]:
    """Indices `[i0, i1)` of output pixels whose centre (in LR pixel units, ascending) lies in the span's core."""
    bounds = torch.tensor([float(span.start), float(span.stop)], dtype=centres_lr.dtype)
    i0, i1 = torch.searchsorted(centres_lr, bounds).tolist()
    return i0, i1
