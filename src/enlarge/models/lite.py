"""`lite`: a LIIF-style any-scale model made cheap enough for a laptop CPU.

Three changes to LIIF, each exact or cheaper by construction:
- **global skip**: the output is the bicubic interpolation of the input plus a predicted residual, so training
  starts at bicubic quality instead of from grey;
- **split first layer**: LIIF's first decoder layer on the 3×3-unfolded feature equals a 3×3 convolution run once
  per LR pixel, plus a linear term in the relative coordinate and cell; only the small remainder of the MLP runs
  per output pixel and neighbour;
- a slim EDSR-style encoder.
The 4-neighbour local ensemble with area weights is kept, so the output stays continuous across LR cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from enlarge.models.bicubic import TAPS, bicubic_grid, sample_bicubic
from enlarge.models.encoders import EDSR, conv3x3
from enlarge.models.ensemble import (
    SplitLayer,
    decode_block,
    decode_grid,
    ensemble_weights,
    gather_rows,
    neighbours,
    times_size,
)
from enlarge.models.mlp import MLP

GEOMETRY_DIMS = 4  # relative coordinate (y, x) and relative cell (h, w)
RGB = 3
NORM_MEAN = 0.5
NORM_STD = 0.5
# Pixels per row chunk of the grid path: its 64-wide intermediates stay in cache (measured: 4096–16384 within
# 10%, 65536 about 1.3× slower).
GRID_CHUNK = 8192


class LiteFeatures(NamedTuple):
    """What `encode` hands to `query`: the per-LR-pixel hidden pre-activations and the input (for the skip)."""

    hidden: torch.Tensor  # B×hidden×h×w
    lr: torch.Tensor  # B×3×h×w in [0, 1]


class Lite(nn.Module):
    """Slim encoder + split-layer implicit decoder + bicubic skip."""

    def __init__(
        self, n_feats: int = 32, n_resblocks: int = 8, hidden: int = 64, head: Sequence[int] = (32,)
    ) -> None:
        super().__init__()
        self.encoder = EDSR(n_resblocks=n_resblocks, n_feats=n_feats)
        self.to_hidden = conv3x3(n_feats, hidden)
        self.from_geometry = nn.Linear(GEOMETRY_DIMS, hidden, bias=False)
        self.head = nn.Sequential(nn.ReLU(inplace=True), MLP(hidden, RGB, head))  # its input is always a fresh sum

    @property
    def receptive_field(self) -> int:
        """Encoder + the 3×3 split layer + the ensemble's neighbour, or the bicubic taps if wider."""
        return max(self.encoder.receptive_field + 2, TAPS // 2)

    @property
    def grid_band(self) -> int:
        """Pixels per `query_grid` call when it is run band by band from outside (the ONNX grid graph): it traces
        with symbolic sizes and costs only its rows, with no work over the whole feature map."""
        return GRID_CHUNK

    def encode(self, lr: torch.Tensor) -> LiteFeatures:
        feat = self.encoder((lr - NORM_MEAN) / NORM_STD)
        return LiteFeatures(hidden=self.to_hidden(feat), lr=lr)

    def query(self, feats: LiteFeatures, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        hidden = feats.hidden
        h, w = hidden.shape[-2:]
        table = hidden.flatten(2).transpose(1, 2)
        rel_cell = times_size(cell, h, w)
        cands = neighbours(coord, (h, w))
        preds = []
        for nb in cands:
            geometry = self.from_geometry(torch.cat([nb.rel_coord, rel_cell], dim=-1))
            preds.append(self.head(gather_rows(table, nb.index) + geometry))
        weights = ensemble_weights([nb.rel_coord for nb in cands])
        residual = sum(p * wgt.unsqueeze(-1) for p, wgt in zip(preds, weights))
        return sample_bicubic(feats.lr, coord) + residual * NORM_STD

    def query_grid(self, feats: LiteFeatures, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Grid fast path (batch 1), equal to `query` on the flattened grid → 1×3×len(ys)×len(xs).

        Neighbours, offsets and ensemble weights are separable per row and column, so the geometry term is a
        row vector plus a column vector and no per-pixel coordinate tensor is built (`decode_grid`).
        """
        hidden, layer = self._split_layer(feats, cell)
        residual = decode_grid(hidden, ys, xs, layer.row_weight, layer.col_weight, layer.constant, layer.head,
                               layer.channels, GRID_CHUNK)
        return bicubic_grid(feats.lr, ys, xs).add_(residual, alpha=NORM_STD)

    def query_block(self, feats: LiteFeatures, rows: torch.Tensor, cols: torch.Tensor, row_offsets: torch.Tensor,
                    col_offsets: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """A centred block of an integer-scale grid (batch 1; `ensemble.decode_block`: LR cells `rows` × `cols`,
        per-phase offsets) at output centres `ys` × `xs` → 1×3×len(ys)×len(xs), equal to `query_grid` there.

        What the ONNX export traces for integer scales: the head runs as dense products over shifted windows of
        the feature map, phase by phase pair at once, where `query_grid`'s traced form gathers every pixel.
        """
        hidden, layer = self._split_layer(feats, cell)
        residual = decode_block(hidden, rows, cols, row_offsets, col_offsets, layer)
        return bicubic_grid(feats.lr, ys, xs) + residual * NORM_STD

    def _split_layer(self, feats: LiteFeatures, cell: torch.Tensor) -> tuple[torch.Tensor, SplitLayer]:
        """The hidden map (hidden×h×w) and the first layer's coordinate terms for an output grid of `cell` (2,)."""
        hidden = feats.hidden.view(feats.hidden.shape[1:])  # not [0] or squeeze: copies in ONNX
        h, w = hidden.shape[-2:]
        weight = self.from_geometry.weight  # hidden×4: (rel y, rel x, cell h, cell w)
        constant = weight[:, 2] * (cell[0] * h) + weight[:, 3] * (cell[1] * w)
        return hidden, SplitLayer(weight[:, 0], weight[:, 1], constant, self.head, RGB)

    def forward(self, lr: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query(self.encode(lr), coord, cell)
