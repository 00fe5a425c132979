"""A decoder head with a per-neighbour input offset and the ensemble's blend folded into its parameters.

The phase-dense decoder feeds each of the four neighbours a feature window plus one constant geometry vector g,
and blends the four outputs with constant weights. For a head made only of ReLUs and Linears, neither needs a
pass of its own over the wide pre-activations: relu(x + g) = max(x, −g) + g, so a ReLU becomes one `maximum`
and carries g on; a Linear takes W·g into a per-neighbour bias; and since the last Linear is linear and shared,
the neighbours are blended before it: Σₙ bₙ·(W·xₙ) = W·(Σₙ bₙ·xₙ), one weighted sum of its narrow inputs and one
product with few output channels, written channels first (a product per neighbour with three output columns ran
at a tenth of the CPU's dense rate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from enlarge.models.mlp import flat_layers


@dataclass(frozen=True)
class Floor:
    """A ReLU on inputs that are short of their true value by a per-neighbour offset o: x ← max(x, −o)."""

    value: torch.Tensor  # neighbours×1×C: −o in the compute precision


@dataclass(frozen=True)
class Affine:
    """A Linear whose inputs are short of their true value: x ← x·W + (b + W·o), per neighbour."""

    weight: torch.Tensor  # neighbours×in×out (Wᵀ, repeated)
    bias: torch.Tensor  # neighbours×1×out


@dataclass(frozen=True)
class FoldedHead:
    """`fold`'s result for one set of neighbour offsets and blend weights.

    `entry`: the floor of the head's leading ReLU (neighbours×C), applied as the caller gathers the inputs (None:
    the head starts otherwise and the inputs are taken as they are); `steps`: the rest but the last Linear;
    `blend` (1×neighbours), `weight` (out×in, the last Linear's) and `constant` (out×1, float32: its bias and what
    the offsets carried to it, blended): the last Linear after the blend.
    """

    entry: torch.Tensor | None
    steps: tuple[Floor | Affine, ...]
    blend: torch.Tensor
    weight: torch.Tensor
    constant: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Σₙ blendₙ·head(xₙ + offsetₙ) → out×N float32 (channels first), from `x` (neighbours×N×C, `entry`
        applied; it is overwritten)."""
        for step in self.steps:
            if isinstance(step, Floor):
                torch.maximum(x, step.value, out=x)
            else:
                x = torch.baddbmm(step.bias, x, step.weight)
        blended = torch.mm(self.blend, x.view(x.shape[0], -1)).view(-1, x.shape[-1])  # N×in
        return torch.mm(self.weight, blended.t()).float().add_(self.constant)


def affine_layers(head: Callable[[torch.Tensor], torch.Tensor]) -> list[nn.Module] | None:
    """`head`'s layers when it is a module that runs only ReLUs, identities (a linearized ReLU) and Linears, ending
    in a Linear, else None: the heads `fold` takes."""
    if not isinstance(head, nn.Module):
        return None
    layers = [m for m in flat_layers(head) if not isinstance(m, nn.Identity)]
    if not layers or not isinstance(layers[-1], nn.Linear):
        return None
    return layers if all(isinstance(m, nn.ReLU | nn.Linear) for m in layers) else None


def folded_bias(layer: nn.Linear, offset: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`layer`'s bias for inputs short of `offset` (neighbours×in): b + W·offset in float32, with W as a product
    in `dtype` sees it, so the offset cancels exactly where a ReLU was off (an elementwise product, which autocast
    leaves alone: the matrices are tiny)."""
    return (offset.unsqueeze(-2) * layer.weight.to(dtype).float()).sum(-1) + layer.bias


def fold(layers: list[nn.Module], offset: torch.Tensor, blend: torch.Tensor, dtype: torch.dtype) -> FoldedHead:
    """The `affine_layers` head for inputs short of `offset` (neighbours×C, float32), blended by `blend`
    (neighbours), computing in `dtype`.

    Each bias is rounded to `dtype` and what it cannot hold stays in the offset carried on, so reduced precision
    loses no more than the straightforward head does (a bias of b + W·g is ten times larger than b alone).
    """
    entry = None
    if isinstance(layers[0], nn.ReLU):
        entry, layers = offset.neg().to(dtype), layers[1:]
    *body, last = layers
    steps: list[Floor | Affine] = []
    for layer in body:
        if isinstance(layer, nn.ReLU):
            steps.append(Floor(offset.neg().to(dtype).unsqueeze(1)))
        else:
            bias = folded_bias(layer, offset, dtype)
            rounded = bias.to(dtype)
            weight = layer.weight.t().to(dtype).expand(len(offset), -1, -1).contiguous()
            steps.append(Affine(weight, rounded.unsqueeze(1)))
            offset = bias - rounded.float()
    constant = (blend.unsqueeze(-1) * folded_bias(last, offset, dtype)).sum(0).unsqueeze(-1)
    return FoldedHead(entry, tuple(steps), blend.view(1, -1).to(dtype), last.weight.to(dtype), constant)


def folded_block(layers: list[nn.Module], inputs: torch.Tensor, offset: torch.Tensor,
                 blend: torch.Tensor) -> torch.Tensor:
    """`fold`'s head on every phase pair at once, in fp32 and in the form an ONNX trace takes (no size read into
    Python) → P×Q×N×out: Σₙ blendₙ·head(inputsₙ + offsetₙ).

    `inputs`: N×neighbours×C, shared by every phase pair (a phase-dense block's feature windows); `offset`:
    P×Q×neighbours×C, each phase pair's geometry vectors; `blend`: P×Q×neighbours. As in `fold`, a ReLU on inputs
    short of an offset is a `maximum` with its negation, and the last Linear takes the blend into per-phase-pair
    weights, so the neighbours are summed inside one product per phase pair; here a Linear also passes the offset
    on (through its weights, its bias added) instead of adding a bias, and its product is one with its own weights
    (constants, which onnxruntime packs once). So the wide activations see only a `maximum` and a product per layer.
    """
    *body, last = layers
    x = inputs.unsqueeze(0).unsqueeze(0)  # 1×1×N×neighbours×C: broadcast over the phase pairs
    carried = offset.unsqueeze(2)  # P×Q×1×neighbours×C
    for layer in body:
        if isinstance(layer, nn.ReLU):
            x = torch.maximum(x, carried.neg())
        else:
            x, carried = torch.matmul(x, layer.weight.t()), torch.matmul(carried, layer.weight.t()) + layer.bias
    weight = blend.unsqueeze(2).unsqueeze(-1)  # P×Q×1×neighbours×1
    constant = (weight * (torch.matmul(carried, last.weight.t()) + last.bias)).sum(-2)  # P×Q×1×out
    blended = (blend.unsqueeze(-1).unsqueeze(-1) * last.weight.t()).flatten(2, 3)  # P×Q×(neighbours·in)×out
    return torch.matmul(x.flatten(-2), blended) + constant
