"""Start a run from trained weights, also into a larger network of the same family (function-preserving growth).

Training compute is scarce, so a bigger model should not start from noise when a smaller one is trained: a
`lite` state grows into a wider and deeper `lite` (more encoder channels and blocks, a wider decoder head) that
computes exactly the same output at step 0, then uses its new capacity as training goes on (Net2Net-style):
- a weight that grows keeps the old block in its leading slice; the rows of new output channels keep their fresh
  random initialisation, and the old outputs' columns for new inputs are zero, so old channels never see new ones;
- a residual block that is new gets a zero last convolution, so it starts as the identity;
- EDSR's closing body convolution moves to its new index after the added blocks.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from enlarge.errors import ConfigError
from enlarge.models.registry import SPECS, bundled_weights
from enlarge.training.checkpoint import load_state

BODY_KEY = re.compile(r"^encoder\.body\.(\d+)\.(.+)$")
RESIDUAL_OUT = "body.2"  # the last convolution of an EDSR residual block (encoders.ResBlock)


def load_initial_state(source: str) -> dict[str, torch.Tensor]:
    """The state dict named by `init_from`: a registered model's bundled weights, a `.safetensors` file, or a
    `.pt` file (a run's `best.pt`, or the model state inside a `last.pt` checkpoint)."""
    if source in SPECS:
        path = bundled_weights(SPECS[source])
        if path is None:
            raise ConfigError(f"init_from: registered model {source!r} ships no weights")
        return load_file(str(path))
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(f"init_from: {source!r} is neither a registered model nor a file")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = load_state(path)
    model = state.get("model", state)
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise ConfigError(f"init_from: {path} holds no model state")
    return model


def _blocks(state: dict[str, torch.Tensor]) -> int:
    """Residual blocks of an EDSR encoder state: body indices with a residual conv."""
    indices = {int(m.group(1)) for key in state if (m := BODY_KEY.match(key)) and m.group(2).startswith("body.")}
    return len(indices)


def _source_key(key: str, old_blocks: int, new_blocks: int) -> str | None:
    """The key of the smaller state that `key` of the larger one grows from (None: a new residual block)."""
    match = BODY_KEY.match(key)
    if match is None:
        return key
    index, rest = int(match.group(1)), match.group(2)
    if index == new_blocks:  # the closing convolution after the blocks
        return f"encoder.body.{old_blocks}.{rest}"
    return key if index < old_blocks else None


def grow_state(small: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict for `module` (a larger network of the family of `small`) that computes what `small` does."""
    target = {k: v.detach().clone() for k, v in module.state_dict().items()}
    old_blocks, new_blocks = _blocks(small), _blocks(target)
    if new_blocks < old_blocks:
        raise ConfigError(f"init_from: cannot shrink {old_blocks} encoder blocks to {new_blocks}")
    used = set()
    for key, value in target.items():
        source = _source_key(key, old_blocks, new_blocks)
        if source is None:
            if key.rsplit(".", 1)[0].endswith(RESIDUAL_OUT):
                value.zero_()  # a new residual block starts as the identity
            continue
        if source not in small:
            raise ConfigError(f"init_from: the weights have no {source!r}; not the same family of network")
        old = small[source]
        if old.dim() != value.dim() or any(o > n for o, n in zip(old.shape, value.shape)):
            raise ConfigError(f"init_from: {source} {tuple(old.shape)} does not fit into {tuple(value.shape)}")
        used.add(source)
        if old.dim() >= 2:
            value[: old.shape[0], old.shape[1] :] = 0  # old outputs ignore new inputs
        value[tuple(slice(0, n) for n in old.shape)] = old
    unused = sorted(set(small) - used)
    if unused:
        raise ConfigError(f"init_from: weights {', '.join(unused[:3])} have no place in the new network")
    return target


def initial_weights(source: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """`init_from`'s state for `module`: loaded as is when the shapes match, grown when the network is larger."""
    small = load_initial_state(source)
    current = module.state_dict()
    if small.keys() == current.keys() and all(small[k].shape == current[k].shape for k in small):
        return small
    return grow_state(small, module)
