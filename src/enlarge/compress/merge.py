"""Exact merges of the linear maps a linearized ReLU leaves side by side, kept only where they cost fewer MACs.

- decoder MLP: Linear → identity → Linear is one Linear (W = W₂·W₁, b = W₂·b₁ + b₂);
- lite with its head's first ReLU linear: the per-LR-pixel `to_hidden` conv, the per-query `from_geometry` Linear
  and the head's first Linear compose into a narrower split layer (the conv's zero padding commutes with the
  channel mix, so this is exact at borders too).
Convolution stacks are left alone: two 3×3 convs make one 5×5 that costs more and differs at borders.
Weights are composed in float64 and stored as float32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from enlarge.compress.surgery import Network, get_path, renumber, renumbered
from enlarge.errors import ModelError
from enlarge.models.macs import count_macs

MAC_PROBE_SIZE = 16  # MACs per output pixel do not depend on the probe size; a small one is quick
MERGE_TOLERANCE = 1e-4  # largest output change a merge may make (float rounding only), in [0, 1] RGB units
PROBE_SEED = 0
PROBE_LR = 12  # side of the random LR the merged and unmerged outputs are compared on
PROBE_QUERIES = 256
LITE_HEAD_RELU = "head.0"


@dataclass(frozen=True)
class MlpSite:
    """A decoder MLP (`layers.{0,2,…}` Linear, `layers.{1,3,…}` ReLU) and the config key of its hidden widths."""

    path: str
    hidden_key: tuple[str, ...]

    def relu(self, i: int) -> str:
        return f"{self.path}.layers.{2 * i + 1}"

    def linear(self, i: int) -> str:
        return f"{self.path}.layers.{2 * i}"


MLP_SITES = {"lite": MlpSite("head.1", ("head",)), "liif": MlpSite("imnet", ("hidden",))}


def merge_mlp(net: Network, site: MlpSite, i: int) -> Network:
    """Fold Linear `2i` and Linear `2i+2` of the MLP into one across its linear ReLU `2i+1`."""
    if site.relu(i) not in net.linear:
        raise ModelError(f"{site.relu(i)} is not linear; the layers around it cannot merge")
    first, second = site.linear(i), site.linear(i + 1)
    weight, bias = _compose(net.state[f"{second}.weight"], net.state[f"{second}.bias"],
                            net.state[f"{first}.weight"], net.state[f"{first}.bias"])
    hidden = list(get_path(net.config, site.hidden_key))
    del hidden[i]
    prefix = f"{site.path}.layers"

    def rename(key: str) -> str | None:
        return renumber(key, prefix, {2 * i, 2 * i + 1, 2 * i + 2}, 2 * i + 3, 2)

    merged = {f"{first}.weight": weight, f"{first}.bias": bias}
    return renumbered(net, rename, {site.hidden_key: hidden}, merged)


def fold_lite_head(net: Network) -> Network:
    """lite with `head.0` linear: `to_hidden`, `from_geometry` and the head's first Linear become one split layer
    as wide as the head's first hidden layer; the head's second ReLU becomes its first."""
    head = list(net.config.get("head", []))
    if net.arch != "lite" or LITE_HEAD_RELU not in net.linear or not head:
        raise ModelError("the lite head fold needs arch lite, head.0 linear and a head with a hidden layer")
    site = MLP_SITES["lite"]
    mix, mix_bias = net.state[f"{site.linear(0)}.weight"].double(), net.state[f"{site.linear(0)}.bias"].double()
    conv, conv_bias = net.state["to_hidden.weight"].double(), net.state["to_hidden.bias"].double()
    state = {
        "to_hidden.weight": torch.einsum("oh,hfyx->ofyx", mix, conv).float(),
        "to_hidden.bias": (mix @ conv_bias + mix_bias).float(),
        "from_geometry.weight": (mix @ net.state["from_geometry.weight"].double()).float(),
    }
    prefix = f"{site.path}.layers"

    def rename(key: str) -> str | None:
        if key == LITE_HEAD_RELU:
            return None
        if key == site.relu(0):
            return LITE_HEAD_RELU
        return renumber(key, prefix, {0, 1}, 2, 2)

    return renumbered(net, rename, {("hidden",): head[0], ("head",): head[1:]}, state)


def candidates(net: Network) -> list[tuple[str, Callable[[], Network]]]:
    """Every exact merge the network allows now: (description, make)."""
    out: list[tuple[str, Callable[[], Network]]] = []
    if net.arch == "lite" and LITE_HEAD_RELU in net.linear and net.config.get("head"):
        first = MLP_SITES["lite"].linear(0)
        what = (f"to_hidden {_shape(net, 'to_hidden')} + from_geometry {_shape(net, 'from_geometry')} + "
                f"{first} {_shape(net, first)} across linear head.0")
        out.append((what, partial(fold_lite_head, net)))
    site = MLP_SITES.get(net.arch)
    if site is not None:
        for i in range(len(get_path(net.config, site.hidden_key))):
            if site.relu(i) in net.linear:
                a, b = site.linear(i), site.linear(i + 1)
                out.append((f"{a} {_shape(net, a)} + {b} {_shape(net, b)} across linear {site.relu(i)}",
                            partial(merge_mlp, net, site, i)))
    return out


def _shape(net: Network, layer: str) -> str:
    """A layer's in→out width, e.g. "64→32"."""
    weight = net.state[f"{layer}.weight"]
    return f"{weight.shape[1]}→{weight.shape[0]}"


def merge_exact(net: Network) -> tuple[Network, list[dict[str, Any]]]:
    """Apply every exact merge that lowers MACs per output pixel at every scale, one at a time until none is left.

    Returns the merged network and one record per merge (what, MACs before and after, largest output change).
    """
    records = []
    merged_any = True
    while merged_any:
        merged_any = False
        for what, make in candidates(net):
            merged = make()
            before = count_macs(net.build(), size=MAC_PROBE_SIZE)
            after = count_macs(merged.build(), size=MAC_PROBE_SIZE)
            if all(after[s] < before[s] for s in before):
                change = output_change(net, merged)
                if change > MERGE_TOLERANCE:
                    raise ModelError(f"merging {what} changed the output by {change:.2e}; the merge is not exact")
                records.append({"merged": what, "macs_before": before, "macs_after": after, "max_abs_change": change})
                net, merged_any = merged, True
                break
    return net, records


def output_change(a: Network, b: Network) -> float:
    """Largest absolute difference between the outputs of two networks on a random input and random queries."""
    gen = torch.Generator().manual_seed(PROBE_SEED)
    lr = torch.rand(1, 3, PROBE_LR, PROBE_LR, generator=gen)
    coord = torch.rand(1, PROBE_QUERIES, 2, generator=gen) * 2 - 1
    cell = torch.full((1, PROBE_QUERIES, 2), 2.0 / (PROBE_LR * 3))
    with torch.inference_mode():
        return float((a.build()(lr, coord, cell) - b.build()(lr, coord, cell)).abs().max())


def _compose(
    w2: torch.Tensor, b2: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x ↦ W₂(W₁x + b₁) + b₂ as one (weight, bias), composed in float64."""
    w2, b2, w1, b1 = (t.double() for t in (w2, b2, w1, b1))
    return (w2 @ w1).float(), (w2 @ b1 + b2).float()
