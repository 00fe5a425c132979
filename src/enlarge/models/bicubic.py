"""Bicubic interpolation at continuous coordinates: the weight-free baseline model, and the global skip of `lite`.

MATLAB's `imresize` kernel (cubic, a = −0.5) with symmetric border padding, sampled at each query's pixel
centre; for an enlargement on a pixel grid this equals MATLAB's bicubic upscaling, the "Bicubic" rows of
published SR tables.
"""

from __future__ import annotations

import torch
from torch import nn

from enlarge.resize import cubic

TAPS = 4  # a cubic kernel spans four samples per axis
FIRST_TAP = -1  # taps are floor(pos) - 1 … floor(pos) + 2
# Output positions per dense block of the grid resampling: a block multiplies an input band of about
# block/scale + 3 pixels, so small blocks keep the products narrow (measured: 48–96 alike, 16 and 256+ slower).
RESAMPLE_BLOCK = 64
ROW_AXIS, COL_AXIS = -2, -1
# Output pixels per `query_grid` call when it is run band by band from outside (the ONNX grid graph): its traced
# form is four gathers per axis, with no intermediates that need to stay in cache.
GRID_BAND = 65536


def _axis_taps(pos: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (symmetric-padded into 0…n-1) and kernel weights of the four taps around `pos` (pixel units)."""
    base = torch.floor(pos).long() + FIRST_TAP
    offsets = torch.arange(TAPS, device=pos.device)
    idx = base.unsqueeze(-1) + offsets
    weights = cubic(pos.unsqueeze(-1) - idx.to(pos.dtype))
    # symmetric padding: -1 → 0, -2 → 1, n → n-1, n+1 → n-2 (period 2n)
    idx = torch.remainder(idx, 2 * n)
    idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
    return idx, weights


def sample_bicubic(image: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    """Bicubic value of `image` (B×C×h×w) at `coord` (B×Q×2, (y, x) in [-1, 1]) → B×Q×C."""
    b, c, h, w = image.shape
    pos_y = (coord[..., 0] + 1) / 2 * h - 0.5
    pos_x = (coord[..., 1] + 1) / 2 * w - 0.5
    iy, wy = _axis_taps(pos_y, h)  # B×Q×4
    ix, wx = _axis_taps(pos_x, w)
    flat = (iy.unsqueeze(-1) * w + ix.unsqueeze(-2)).flatten(2)  # B×Q×16
    weight = (wy.unsqueeze(-1) * wx.unsqueeze(-2)).flatten(2)  # B×Q×16
    table = image.flatten(2)  # B×C×(h·w)
    q = coord.shape[1]
    values = torch.gather(table, 2, flat.view(b, 1, -1).expand(b, c, -1)).view(b, c, q, TAPS * TAPS)
    return (values * weight.unsqueeze(1).to(values.dtype)).sum(-1).transpose(1, 2)


def bicubic_grid(image: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bicubic values of `image` (B×C×h×w) on the grid `ys` × `xs` → B×C×len(ys)×len(xs) float32, separably.

    The same four taps and weights per axis as `sample_bicubic`, applied as banded matrix products: rows, then
    columns, each block of output positions multiplying only the input band its taps reach. Always fp32, also
    under autocast: as lite's skip it carries most of the signal, which bf16's 8-bit mantissa would blur.
    """
    h, w = image.shape[-2:]
    pos_y, pos_x = (ys + 1) / 2 * h - 0.5, (xs + 1) / 2 * w - 0.5
    with torch.autocast(device_type=image.device.type, enabled=False):
        image = image.float()
        if torch.jit.is_tracing():  # the blocks' bands are data-dependent Python ints, which a trace would bake in
            return _gather_taps(_gather_taps(image, pos_y, h, ROW_AXIS), pos_x, w, COL_AXIS)
        rows = image.new_empty(*image.shape[:-2], len(ys), w)
        for block, lo, hi, matrix in _axis_blocks(pos_y, h):
            torch.matmul(matrix, image[..., lo:hi, :], out=rows[..., block, :])
        out = image.new_empty(*image.shape[:-2], len(ys), len(xs))
        for block, lo, hi, matrix in _axis_blocks(pos_x, w):
            torch.matmul(rows[..., lo:hi], matrix.T, out=out[..., block])
    return out


def _gather_taps(image: torch.Tensor, pos: torch.Tensor, n: int, axis: int) -> torch.Tensor:
    """One axis of `bicubic_grid` as four weighted gathers (`axis` ROW_AXIS or COL_AXIS of `image`).

    The form an ONNX trace takes: every size stays symbolic. The same taps and weights as the banded products
    (several times slower in eager PyTorch, whose last-axis gathers are slow, so only traces use it).
    """
    idx, weights = _axis_taps(pos, n)
    shape = (-1, 1) if axis == ROW_AXIS else (-1,)  # broadcast each output position's weight along the other axis
    out = image.index_select(axis, idx[:, 0]) * weights[:, 0].view(shape)
    for tap in range(1, TAPS):
        out += image.index_select(axis, idx[:, tap]) * weights[:, tap].view(shape)
    return out


def _axis_blocks(pos: torch.Tensor, n: int) -> list[tuple[slice, int, int, torch.Tensor]]:
    """The taps of one axis as dense blocks: (output slice, input band [lo, hi), block×band weight matrix).

    Taps that fold onto the same input pixel at a border add up, as their separate terms do in the point form.
    """
    idx, weights = _axis_taps(pos, n)
    blocks = []
    for start in range(0, len(pos), RESAMPLE_BLOCK):
        part = slice(start, start + RESAMPLE_BLOCK)
        taps = idx[part]
        lo, hi = int(taps.min()), int(taps.max()) + 1
        matrix = weights.new_zeros(taps.shape[0], hi - lo).scatter_add_(1, taps - lo, weights[part])
        blocks.append((part, lo, hi, matrix))
    return blocks


class Bicubic(nn.Module):
    """The weight-free baseline: `encode` keeps the image, `query` interpolates it bicubically."""

    receptive_field = TAPS // 2
    grid_band = GRID_BAND

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        return lr

    def query(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return sample_bicubic(feat, coord)

    def query_grid(self, feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Grid fast path: 1×3×len(ys)×len(xs)."""
        return bicubic_grid(feat, ys, xs)

    def forward(self, lr: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query(self.encode(lr), coord, cell)
