"""EASIER's importance metric (Quétu, Liao, Tartaglione, ECML PKDD 2024): how often each rectifier is used.

For every neuron (channel) of a ReLU, the sign of its pre-activation over a calibration set gives p_on, the share
of positive values among the non-zero ones (exact zeros are discarded; a conv layer's channel counts every spatial
position). A neuron that is always on acts linearly and one that is always off is dead: both have binary entropy
H(p_on) = 0. A layer's entropy is the mean over its neurons; the lowest-entropy layer is the best candidate to
replace with identity.

Conv feature maps are N×C×H×W; decoder tensors are channels-last (…×C), as every model here lays them out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from enlarge.coords import make_coord
from enlarge.engine.query import QUERY_CHUNK
from enlarge.evaluation import LEVELS, Settings, find_dataset, load_pair
from enlarge.models import LoadedModel
from enlarge.training.data import Batch

RECTIFIERS = (nn.ReLU,)
CONV_NDIM = 4  # N×C×H×W feature maps: channels on dim 1
CONV_CHANNEL_DIM = 1
LINEAR_CHANNEL_DIM = -1


@dataclass(frozen=True)
class LayerEntropy:
    """One rectifier's statistics over the calibration set."""

    name: str  # module path, e.g. "encoder.body.3.body.1"
    kind: str  # "conv" or "linear": where its input comes from
    neurons: int
    entropy: float  # mean binary entropy of its neurons, in bits
    p_on_min: float
    p_on_max: float
    dead: int  # neurons never positive
    samples: int  # non-zero pre-activations seen per neuron, summed over neurons


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) = −p·log2 p − (1−p)·log2(1−p), with 0·log 0 = 0."""
    q = 1 - p
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(q, q)) / math.log(2)


def rectifier_names(module: nn.Module) -> list[str]:
    """The rectifiers of `module` that are still active, in module order."""
    return [name for name, layer in module.named_modules() if isinstance(layer, RECTIFIERS)]


class EntropyProbe:
    """Counts, per rectifier and neuron, the positive and negative pre-activations seen while it is active."""

    def __init__(self, module: nn.Module) -> None:
        self._module = module
        self._on: dict[str, torch.Tensor] = {}
        self._off: dict[str, torch.Tensor] = {}
        self._kind: dict[str, str] = {}

    @contextmanager
    def active(self) -> Iterator[EntropyProbe]:
        """Forward pre-hooks on every rectifier (pre: an in-place ReLU overwrites its input)."""
        handles = [
            layer.register_forward_pre_hook(self._hook(name))
            for name, layer in self._module.named_modules()
            if isinstance(layer, RECTIFIERS)
        ]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach()
            conv = x.dim() == CONV_NDIM
            dim = CONV_CHANNEL_DIM if conv else LINEAR_CHANNEL_DIM
            x = x.movedim(dim, -1).reshape(-1, x.shape[dim])
            on = (x > 0).sum(dim=0, dtype=torch.int64)
            off = (x < 0).sum(dim=0, dtype=torch.int64)
            if name in self._on:
                self._on[name] += on
                self._off[name] += off
            else:
                self._on[name], self._off[name] = on, off
                self._kind[name] = "conv" if conv else "linear"

        return hook

    def results(self) -> list[LayerEntropy]:
        """Per-layer statistics of everything counted so far, in module order."""
        out = []
        for name in rectifier_names(self._module):
            if name not in self._on:
                continue  # never ran on the calibration set
            on, off = self._on[name], self._off[name]
            seen = (on + off).to(torch.float64)
            p_on = torch.where(seen > 0, on / seen.clamp(min=1), torch.zeros_like(seen))
            out.append(LayerEntropy(
                name=name, kind=self._kind[name], neurons=on.numel(),
                entropy=float(binary_entropy(p_on).mean()), p_on_min=float(p_on.min()), p_on_max=float(p_on.max()),
                dead=int((on == 0).sum()), samples=int(seen.sum()),
            ))
        return out


def entropy_on_batches(module: nn.Module, batches: list[Batch]) -> list[LayerEntropy]:
    """Layer entropies of `module` on training batches, through the forward pass training uses (fp32)."""
    probe = EntropyProbe(module)
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(), probe.active():
            for batch in batches:
                module(batch.lr, batch.coord, batch.cell)
    finally:
        module.train(was_training)
    return probe.results()


def entropy_on_folder(
    model: LoadedModel, folder: Path, scales: tuple[int, ...], limit: int | None = None
) -> list[LayerEntropy]:
    """Layer entropies of `model` enlarging every image of `folder` (LR made as `enlarge eval` makes it) to its
    full HR size, through the reference point query (fast grid paths may fuse a ReLU and bypass its module)."""
    settings = Settings(scales=scales, limit=limit)
    dataset = find_dataset(folder, limit)
    module = model.module.eval()
    probe = EntropyProbe(module)
    with torch.inference_mode(), probe.active():
        for path in dataset.images:
            for scale in scales:
                hr, lr = load_pair(dataset, path, scale, settings)
                size = (hr.shape[-2], hr.shape[-1])
                feats = module.encode(lr.unsqueeze(0).float() / LEVELS)
                coord = make_coord(size).view(1, -1, 2)
                cell = torch.tensor([2.0 / size[0], 2.0 / size[1]]).expand_as(coord)
                for start in range(0, coord.shape[1], QUERY_CHUNK):
                    part = slice(start, start + QUERY_CHUNK)
                    module.query(feats, coord[:, part], cell[:, part])
    return probe.results()


def lowest(entropies: list[LayerEntropy]) -> LayerEntropy:
    """The layer to linearize next: lowest entropy, the earliest in module order on a tie."""
    return min(entropies, key=lambda layer: layer.entropy)


def entropy_table(entropies: list[LayerEntropy]) -> str:
    """The entropies as an aligned text table: layer, kind, neurons, mean entropy, p_on range, dead neurons."""
    header = ["layer", "kind", "neurons", "entropy (bits)", "p_on range", "dead"]
    body = [
        [e.name, e.kind, str(e.neurons), f"{e.entropy:.4f}", f"{e.p_on_min:.3f}–{e.p_on_max:.3f}", str(e.dead)]
        for e in entropies
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [header, *body])
