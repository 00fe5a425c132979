"""Tiles of the LR input: each tile is encoded with a margin of the model's receptive field, so the output
pixels whose centres fall in its core come out as if the whole image had been encoded at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from enlarge.coords import axis_coords
from enlarge.engine.query import Frame
from enlarge.errors import EnlargeError

# Inputs up to this many pixels are encoded whole when no tile size is given.
AUTO_TILE_MAX_PIXELS = 512 * 512
AUTO_TILE = 384  # core size (LR pixels) of automatic tiles
# Smallest tile a user may ask for: a tile is encoded with a margin of the receptive field on every side, so below
# this the margins are nearly all of the work (lite at 2 pixels: 400× the untiled cost).
MIN_TILE = 16


def check_tile(tile: int | None) -> None:
    """EnlargeError unless `tile` is None (automatic) or at least MIN_TILE input pixels."""
    if tile is not None and tile < MIN_TILE:
        raise EnlargeError(
            f"tile size {tile} is below the minimum of {MIN_TILE} input pixels; give at least {MIN_TILE}, "
            "or leave it unset for automatic tiles",
            setting="tile",
        )


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


@dataclass(frozen=True)
class TileJob:
    """One tile to run: the LR window to encode and the output rows/columns whose centres its core owns."""

    frame: Frame
    ys: Span
    xs: Span
    rows: slice
    cols: slice

    def crop(self, lr: torch.Tensor) -> torch.Tensor:
        """The tile's encoded window of `lr` (1×3×h×w)."""
        return lr[:, :, self.ys.pad_start : self.ys.pad_stop, self.xs.pad_start : self.xs.pad_stop]


@dataclass(frozen=True)
class TilePlan:
    """Output pixel centres (global coordinates and LR pixel units) and the non-empty tiles, in raster order."""

    rows: torch.Tensor
    cols: torch.Tensor
    rows_lr: torch.Tensor
    cols_lr: torch.Tensor
    jobs: list[TileJob]


def plan_tiles(lr_hw: tuple[int, int], out_size: tuple[int, int], tile: int | None, margin: int) -> TilePlan:
    """Cut an h×w input into tiles of core `tile` (None: automatic; at least `margin`) widened by `margin`, for an
    H×W output."""
    h, w = lr_hw
    tile = (tile if tile is not None else auto_tile(h, w)) or max(h, w)
    tile = max(tile, margin)  # a core narrower than its margins costs more than 9× the untiled work
    rows, cols = axis_coords(out_size[0]), axis_coords(out_size[1])
    rows_lr, cols_lr = (rows + 1) / 2 * h, (cols + 1) / 2 * w
    jobs = []
    for sy in spans(h, tile, margin):
        r0, r1 = owned_range(rows_lr, sy)
        for sx in spans(w, tile, margin):
            c0, c1 = owned_range(cols_lr, sx)
            if r1 > r0 and c1 > c0:
                frame = Frame(sy.pad_start, sx.pad_start, sy.pad_stop - sy.pad_start, sx.pad_stop - sx.pad_start, (h, w))
                jobs.append(TileJob(frame, sy, sx, slice(r0, r1), slice(c0, c1)))
    return TilePlan(rows, cols, rows_lr, cols_lr, jobs)


def channels_last_copy(crop: torch.Tensor) -> torch.Tensor:
    """A fresh channels-last copy of an LR crop, the faster layout for the CPU convolutions.

    A fresh copy rather than `.contiguous(channels_last)`: a view of a permuted HWC array can pass for
    channels-last yet make the convolutions return NCHW features, which the grid decoder would then re-layout.
    """
    return torch.empty_like(crop, memory_format=torch.channels_last).copy_(crop)

