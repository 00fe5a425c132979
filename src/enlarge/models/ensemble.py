"""LIIF's local ensemble: the four LR feature cells around a query, its offset to each, and their blend weights.

Both the reference LIIF decoder and the light decoders use these helpers, so every model shares one
definition of "nearest feature" and "diagonally opposite area".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The official code nudges queries off cell borders by this much and clamps inside (-1, 1) by the same margin.
EPS_SHIFT = 1e-6
# Added to every area so a query exactly on a feature centre still has non-zero weights.
AREA_EPS = 1e-9
# (vy, vx) shifts of the four neighbours, in the official loop order (vx outer = y axis, vy inner = x axis).
SHIFTS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


@dataclass
class Neighbour:
    """One of the four feature cells around each query."""

    index: torch.Tensor  # B×Q long: flat index y*w + x into the h×w feature map
    rel_coord: torch.Tensor  # B×Q×2: query minus the cell centre, in units of one LR pixel's half-size ×2 (as LIIF)


def axis_neighbours(c: torch.Tensor, n: int, ensemble: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Along one axis: for each shift (−1, +1, or 0 without the ensemble), the nearest cell index and the
    query's offset from that cell's centre in cell half-widths ×2 (LIIF's scaling by the feature size).

    Index arithmetic equivalent to the official `grid_sample(mode='nearest')` on shifted, clamped coordinates.
    """
    radius = 1.0 / n  # half a feature cell in coordinate units
    shifts, eps = ((-1, 1), EPS_SHIFT) if ensemble else ((0,), 0.0)
    out = []
    for v in shifts:
        shifted = (c + (v * radius + eps)).clamp(-1 + EPS_SHIFT, 1 - EPS_SHIFT)
        # cell index = round((c + 1)/2 · n − 0.5), i.e. floor((c + 1)/2 · n) away from exact ties
        index = torch.floor((shifted + 1) / 2 * n).long().clamp_(0, n - 1)
        centre = -1 + (2 * index.to(c.dtype) + 1) / n
        out.append((index, (c - centre) * n))
    return out


def neighbours(coord: torch.Tensor, feat_hw: tuple[int, int], ensemble: bool = True) -> list[Neighbour]:
    """The four nearest feature cells of each query (or the one nearest, without the ensemble), in SHIFTS order.

    `coord`: B×Q×2 (y, x) in [-1, 1]; built from `axis_neighbours` so grid and point queries agree exactly.
    """
    h, w = feat_hw
    along_y = axis_neighbours(coord[..., 0], h, ensemble)
    along_x = axis_neighbours(coord[..., 1], w, ensemble)
    return [
        Neighbour(index=iy * w + ix, rel_coord=torch.stack([ry, rx], dim=-1))
        for iy, ry in along_y
        for ix, rx in along_x
    ]


def ensemble_weights(rel_coords: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each neighbour's weight: the area of the rectangle to the diagonally opposite neighbour, normalised."""
    areas = [torch.abs(r[..., 0] * r[..., 1]) + AREA_EPS for r in rel_coords]
    total = torch.stack(areas).sum(dim=0)
    opposite = areas[::-1]  # SHIFTS order makes index 3 − i the diagonal opposite of i
    return [a / total for a in opposite]


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`table` B×N×C, `index` B×Q → B×Q×C: row `index[b, q]` of batch `b`."""
    return torch.gather(table, 1, index.unsqueeze(-1).expand(-1, -1, table.shape[-1]))
