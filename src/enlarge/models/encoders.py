"""CNN encoders that turn a low-resolution image into a feature map of the same size (no upsampler).

Module and parameter names follow the official LIIF code (`encoder.head.0`, `encoder.body.{i}.body.{0,2}`,
`encoder.SFENet1`, `encoder.RDBs.{i}.convs.{j}.conv.0`, …) so its checkpoints load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KERNEL = 3
PAD = KERNEL // 2


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    """A 3×3 convolution that keeps the spatial size (zero padding 1)."""
    return nn.Conv2d(in_ch, out_ch, KERNEL, padding=PAD)


class ResBlock(nn.Module):
    """conv → ReLU → conv, added to the input (EDSR's block, res_scale 1 by default)."""

    def __init__(self, channels: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels), nn.ReLU(inplace=True), conv3x3(channels, channels))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """EDSR without its upsampler: head conv, `n_resblocks` residual blocks, a conv, and a long skip.

    `edsr-baseline` is 16 blocks of 64 channels; slimmer settings give light encoders.
    """

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        self.head = nn.Sequential(conv3x3(in_channels, n_feats))
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)], conv3x3(n_feats, n_feats))
        self.out_dim = n_feats
        self.receptive_field = 2 * n_resblocks + 2  # 3×3 convs on the longest path, one pixel each

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        return x + self.body(x)


class DenseLayer(nn.Module):
    """One RDN layer: conv → ReLU, concatenated to its input (dense connection)."""

    def __init__(self, in_ch: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv3x3(in_ch, growth), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv(x)), dim=1)


def in_place_allowed() -> bool:
    """Whether RDN may take its memory-saving inference path: no autograd (it writes into a buffer that a
    backward pass would need intact) and no trace (an exported graph keeps the plain concatenations)."""
    return not torch.is_grad_enabled() and not torch.jit.is_tracing()


class RDB(nn.Module):
    """Residual dense block: `n_layers` dense layers, 1×1 local feature fusion, local residual."""

    def __init__(self, g0: int, growth: int, n_layers: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[DenseLayer(g0 + i * growth, growth) for i in range(n_layers)])
        self.LFF = nn.Conv2d(g0 + n_layers * growth, g0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dense = self.dense_in_place(x) if in_place_allowed() else self.convs(x)
        return self.LFF(dense) + x

    def dense_in_place(self, x: torch.Tensor) -> torch.Tensor:
        """The dense layers' concatenation without autograd, built in one preallocated NCHW tensor: each layer
        reads the channels so far as a view and writes its growth into the next slice. The same values as
        `convs(x)`, but no layer copies its input, so the block's peak memory is one concatenation, not two."""
        buffer = x.new_empty(x.shape[0], self.LFF.in_channels, *x.shape[-2:])
        end = x.shape[1]
        buffer[:, :end] = x
        for layer in self.convs:
            grown = layer.conv(buffer[:, :end])
            buffer[:, end : end + grown.shape[1]] = grown
            end += grown.shape[1]
        return buffer


class RDN(nn.Module):
    """RDN without its upsampler (configuration B: G0=64, D=16, C=8, G=64), as LIIF uses it."""

    def __init__(self, g0: int = 64, n_blocks: int = 16, n_layers: int = 8, growth: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.SFENet1 = conv3x3(in_channels, g0)
        self.SFENet2 = conv3x3(g0, g0)
        self.RDBs = nn.ModuleList([RDB(g0, growth, n_layers) for _ in range(n_blocks)])
        self.GFF = nn.Sequential(nn.Conv2d(n_blocks * g0, g0, 1), conv3x3(g0, g0))
        self.out_dim = g0
        self.receptive_field = 2 + n_blocks * n_layers + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.SFENet1(x)
        x = self.SFENet2(shallow)
        if in_place_allowed():
            return self.GFF[1](self._fused_blocks(x)) + shallow
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        return self.GFF(torch.cat(outs, dim=1)) + shallow

    def _fused_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """The blocks and GFF's 1×1 fusion without autograd: the fusion of the concatenated block outputs is the
        sum of each output's own slice of the 1×1 weights, accumulated in float32 as each block finishes, so the
        16 outputs (1024 channels per pixel) are never held at once. Equal to `GFF[0](cat(outs))` up to the
        order of the sum; this is what keeps a large tile of LIIF-RDN within a few GB."""
        fusion, width = self.GFF[0], self.out_dim  # every block outputs out_dim (G0) channels
        acc = None
        for i, block in enumerate(self.RDBs):
            x = block(x)
            part = F.conv2d(x, fusion.weight[:, i * width : (i + 1) * width], fusion.bias if i == 0 else None)
            acc = part.float() if acc is None else acc.add_(part)
        return acc


ENCODERS: dict[str, type[nn.Module]] = {"edsr": EDSR, "rdn": RDN}


def make_encoder(name: str, **kwargs: object) -> nn.Module:
    """Build an encoder by family name (`edsr`, `rdn`) with its keyword settings."""
    return ENCODERS[name](**kwargs)
