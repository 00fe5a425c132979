"""The one coordinate convention: pixel centres in [-1, 1], height first (as the LIIF paper and code)."""

from __future__ import annotations

import torch


def make_coord(shape: tuple[int, int], flatten: bool = True, device: torch.device | str | None = None) -> torch.Tensor:
    """Pixel-centre coordinates of an H×W grid: `coord[..., 0]` is y, `coord[..., 1]` is x, `-1 + (2i + 1)/n`.

    Returns `(H*W)×2` when `flatten`, else `H×W×2`.
    """
    h, w = shape
    ys = axis_coords(h, device=device)
    xs = axis_coords(w, device=device)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)
    return grid.reshape(-1, 2) if flatten else grid


def axis_coords(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Centres of `n` equal cells spanning [-1, 1]: `-1 + (2i + 1)/n`, computed as the official code does."""
    radius = 1.0 / n
    return -1 + radius + (2 * radius) * torch.arange(n, device=device).float()


def make_cell(shape: tuple[int, int], count: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The cell (size of one output pixel, `2/H`, `2/W`) repeated for `count` queries: `count×2`."""
    h, w = shape
    cell = torch.tensor([2.0 / h, 2.0 / w], device=device)
    return cell.expand(count, 2).clone()
