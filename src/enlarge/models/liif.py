"""LIIF (Chen et al., CVPR 2021): a CNN encoder plus an implicit MLP decoder queried at continuous coordinates.

Faithful to the paper and the official code: 3×3 feature unfolding, relative coordinate and relative cell scaled
by the feature size, MLP → RGB, 4-neighbour local ensemble weighted by the diagonally opposite area, and the
(x − 0.5)/0.5 input/output normalisation. `query` is the straightforward query, the reference every fast path
is tested against; `query_grid` is the exact fast path for whole output grids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from enlarge.models.encoders import make_encoder
from enlarge.models.ensemble import decode_grid, ensemble_weights, gather_rows, neighbours, times_size
from enlarge.models.mlp import MLP

UNFOLD = 3  # 3×3 feature unfolding
COORD_DIMS = 2
CELL_DIMS = 2
RGB = 3
NORM_MEAN = 0.5
NORM_STD = 0.5
# Pixels per row chunk of the grid path: its 256-wide intermediates stay in cache (measured on EDSR-baseline:
# 1024–8192 alike, 32768 about 1.3× slower).
GRID_CHUNK = 4096


class LIIF(nn.Module):
    """Encoder + implicit decoder. `encoder` is `{"name": "edsr"|"rdn", **settings}`."""

    def __init__(
        self,
        encoder: dict[str, Any],
        hidden: Sequence[int] = (256, 256, 256, 256),
        local_ensemble: bool = True,
        feat_unfold: bool = True,
        cell_decode: bool = True,
    ) -> None:
        super().__init__()
        settings = dict(encoder)
        self.encoder = make_encoder(settings.pop("name"), **settings)
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        in_dim = self.encoder.out_dim * (UNFOLD * UNFOLD if feat_unfold else 1) + COORD_DIMS
        in_dim += CELL_DIMS if cell_decode else 0
        self.imnet = MLP(in_dim, RGB, hidden)

    @property
    def receptive_field(self) -> int:
        """LR pixels of context each side: the encoder's, the unfold's one, and the ensemble's one."""
        return self.encoder.receptive_field + (1 if self.feat_unfold else 0) + (1 if self.local_ensemble else 0)

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        return self.encoder((lr - NORM_MEAN) / NORM_STD)

    def query(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        if self.feat_unfold:
            b, c, h, w = feat.shape
            feat = F.unfold(feat, UNFOLD, padding=UNFOLD // 2).view(b, c * UNFOLD * UNFOLD, h, w)
        b, c, h, w = feat.shape
        table = feat.flatten(2).transpose(1, 2)  # B×(h·w)×C
        cands = neighbours(coord, (h, w), ensemble=self.local_ensemble)
        preds = []
        for nb in cands:
            parts = [gather_rows(table, nb.index), nb.rel_coord]
            if self.cell_decode:
                parts.append(times_size(cell, h, w))
            inp = torch.cat(parts, dim=-1)
            preds.append(self.imnet(inp.view(-1, inp.shape[-1])).view(b, -1, RGB))
        if not self.local_ensemble:
            return preds[0] * NORM_STD + NORM_MEAN
        weights = ensemble_weights([nb.rel_coord for nb in cands])
        out = sum(p * wgt.unsqueeze(-1) for p, wgt in zip(preds, weights))
        return out * NORM_STD + NORM_MEAN

    def query_grid(self, feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Grid fast path (batch 1), equal to `query` on the flattened grid → 1×3×len(ys)×len(xs).

        The first MLP layer on the 3×3-unfolded feature is a 3×3 convolution (zero padding, as the unfold's),
        run once per LR position instead of once per query and neighbour; its coordinate and cell inputs become
        a row term, a column term and a constant. The unfolded feature map is never built.

        No `grid_band` (unlike lite): the convolution covers the whole feature map on every call, so running this
        band by band (as the ONNX grid graph is run) would repeat it per band; ONNX exports keep the point query.
        """
        first = self.imnet.layers[0]
        _, channels, h, w = feat.shape
        k = UNFOLD if self.feat_unfold else 1
        n_feat = channels * k * k
        # F.unfold orders its outputs channel-major (c·k² + ky·k + kx), the layout of a conv weight out×c×ky×kx
        kernel = first.weight[:, :n_feat].reshape(-1, channels, k, k)
        table = F.conv2d(feat, kernel, padding=k // 2)[0]  # hidden×h×w
        geometry = first.weight[:, n_feat:]  # hidden × (rel y, rel x[, cell h, cell w])
        constant = first.bias
        if self.cell_decode:
            constant = constant + geometry[:, 2] * (cell[0] * h) + geometry[:, 3] * (cell[1] * w)
        rest = self.imnet.layers[1:]  # the first layer's activation, then the remaining layers
        out = decode_grid(
            table, ys, xs, geometry[:, 0], geometry[:, 1], constant, rest, RGB, GRID_CHUNK, self.local_ensemble
        )
        return out.mul_(NORM_STD).add_(NORM_MEAN)

    def forward(self, lr: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query(self.encode(lr), coord, cell)

