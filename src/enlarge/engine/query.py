"""Querying a model's decoder on an output pixel grid: coordinates, cells and chunking.

A tile's output is a grid: the centres of output rows `ys` and columns `xs` (global [-1, 1] coordinates of
the whole output image), re-expressed in the frame of the LR crop that was encoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from enlarge.coords import axis_coords
from enlarge.models.contract import LoadedModel
from enlarge.models.ensemble import row_chunks

# Point queries per decoder call: large enough to amortise per-call overhead, small enough that the per-query
# intermediates of the heaviest model (LIIF's 576-wide unfolded features, 4 neighbours) stay in a few hundred MB.
# Grid paths get the whole grid and chunk it themselves, each to suit its own intermediates.
QUERY_CHUNK = 65536
RGB = 3


@dataclass(frozen=True)
class Frame:
    """An LR crop `[top, top+height) × [left, left+width)` of an LR image of size `full` (h, w)."""

    top: int
    left: int
    height: int
    width: int
    full: tuple[int, int]


def to_local(global_coord: torch.Tensor, start: int, length: int, full: int) -> torch.Tensor:
    """Map coordinates of the full LR image's [-1, 1] frame into a crop's own [-1, 1] frame (one axis)."""
    pixels = (global_coord + 1) / 2 * full - start  # position in LR pixels from the crop's edge
    return pixels / length * 2 - 1


def query_grid(
    model: LoadedModel,
    feats: object,
    frame: Frame,
    rows: torch.Tensor,
    cols: torch.Tensor,
    out_size: tuple[int, int],
    chunk: int = QUERY_CHUNK,
) -> torch.Tensor:
    """RGB at every (row, col) of an output grid → 1×3×len(rows)×len(cols) float32, rows/cols in global coordinates.

    A model with the `GridDecoder` fast path (`model.grid`, decided when it was loaded) gets the whole grid; others
    get flattened points, `chunk` at a time. Coordinates, cell and output live on the device of `rows` (the model's).
    """
    big_h, big_w = out_size
    ys = to_local(rows, frame.top, frame.height, frame.full[0])
    xs = to_local(cols, frame.left, frame.width, frame.full[1])
    # one output pixel in the crop's frame: 2/H of the full image, stretched by full/crop
    cell = torch.tensor(
        [2.0 / big_h * frame.full[0] / frame.height, 2.0 / big_w * frame.full[1] / frame.width],
        dtype=rows.dtype, device=rows.device,
    )
    if model.grid is not None:
        return model.grid.query_grid(feats, ys, xs, cell).float()
    out = torch.empty(len(ys), len(xs), RGB, device=rows.device)
    for band in row_chunks(len(ys), len(xs), chunk):
        coord = torch.stack(torch.meshgrid(ys[band], xs, indexing="ij"), dim=-1).reshape(1, -1, 2)
        cells = cell.expand(1, coord.shape[1], 2)
        out[band] = model.module.query(feats, coord, cells).float().view(-1, len(xs), RGB)
    return out.permute(2, 0, 1).unsqueeze(0)


def output_axis(n_out: int) -> torch.Tensor:
    """Global coordinates of the centres of `n_out` output pixels along one axis."""
    return axis_coords(n_out)
