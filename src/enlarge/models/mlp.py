"""The per-query MLP of LIIF's implicit decoder (module names as the official code: `layers.{0,2,4,...}`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Linear → ReLU → … → Linear, mapping `in_dim` to `out_dim` through `hidden` widths."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden:
            layers += [nn.Linear(last, width), nn.ReLU(inplace=True)]
            last = width
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def flat_layers(module: nn.Module) -> list[nn.Module]:
    """The layers `module` runs, in order, with nested `nn.Sequential`s and `MLP`s opened (each is exactly its
    layers run in turn), so a decoder can see a head's structure whichever way a model nests it."""
    if isinstance(module, MLP):
        return flat_layers(module.layers)
    if isinstance(module, nn.Sequential):
        return [layer for child in module for layer in flat_layers(child)]
    return [module]
