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
    """Bicubic values of `image` (B×C×h×w) on the grid `ys` × `xs` → B×C×len(ys)×len(xs), separably.

    The same four taps and weights per axis as `sample_bicubic`, applied to rows, then to columns.
    """
    h, w = image.shape[-2:]
    iy, wy = _axis_taps((ys + 1) / 2 * h - 0.5, h)  # rows×4
    ix, wx = _axis_taps((xs + 1) / 2 * w - 0.5, w)  # cols×4
    rows = (image[..., iy, :] * wy.to(image.dtype).unsqueeze(-1)).sum(-2)  # B×C×rows×w
    return (rows[..., ix] * wx.to(image.dtype)).sum(-1)


class Bicubic(nn.Module):
    """The weight-free baseline: `encode` keeps the image, `query` interpolates it bicubically."""

    receptive_field = TAPS // 2

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        return lr

    def query(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return sample_bicubic(feat, coord)

    def query_grid(self, feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Grid fast path: 1×3×len(ys)×len(xs)."""
        return bicubic_grid(feat, ys, xs)

    def forward(self, lr: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query(self.encode(lr), coord, cell)
