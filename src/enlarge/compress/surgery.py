"""A model as data — architecture, config, weights — and the structural edits compression makes to it.

Every edit returns a new `Network` whose config rebuilds it with `enlarge.models.build`: a linearized ReLU is listed
in the config's `linear_activations`; a dropped residual block is one block fewer in the encoder's config, with the
later blocks' weights (and linear names) renumbered, so a compressed model is a plain model of the same family.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from enlarge.errors import ModelError
from enlarge.models.registry import LINEAR_ACTIVATIONS, LoadedModel, build, describe, load_state_strict

RESBLOCK_RELU = 1  # encoders.ResBlock: body = (conv, ReLU, conv)


@dataclass(frozen=True)
class Network:
    """Architecture, config (with any `linear_activations`) and fp32 weights of a model being compressed."""

    arch: str
    config: dict[str, Any]
    state: dict[str, torch.Tensor]

    @classmethod
    def of(cls, loaded: LoadedModel) -> Network:
        """The network of a loaded model (weights copied, fp32)."""
        state = {k: v.detach().to(torch.float32).clone() for k, v in loaded.module.state_dict().items()}
        return cls(loaded.descriptor.arch, copy.deepcopy(loaded.descriptor.config), state)

    @property
    def linear(self) -> list[str]:
        """The ReLUs that run as identity."""
        return list(self.config.get(LINEAR_ACTIVATIONS, []))

    def build(self) -> nn.Module:
        """The module with these weights, in eval mode."""
        module = build(self.arch, self.config)
        load_state_strict(module, self.state, f"{self.arch} network")
        return module.eval()

    def loaded(self, name: str) -> LoadedModel:
        """A LoadedModel (module + descriptor) for the engine, validation and evaluation."""
        module = self.build()
        return LoadedModel(module, describe(name, self.arch, self.config, module, has_weights=True))

    def with_linear(self, name: str) -> Network:
        """This network with the ReLU `name` replaced by identity."""
        if name in self.linear:
            raise ModelError(f"{name} is already linear")
        return self.with_config(linear=[*self.linear, name])

    def with_config(
        self, *, linear: list[str] | None = None, settings: dict[tuple[str, ...], Any] | None = None,
        state: dict[str, torch.Tensor] | None = None,
    ) -> Network:
        """A copy with new linear names, config values (by key path) and/or weights."""
        config = copy.deepcopy(self.config)
        for path, value in (settings or {}).items():
            set_path(config, path, value)
        if linear is not None:
            config.pop(LINEAR_ACTIVATIONS, None)
            if linear:
                config[LINEAR_ACTIVATIONS] = linear
        return Network(self.arch, config, dict(self.state if state is None else state))


def get_path(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    """A nested config value, e.g. ("encoder", "n_resblocks")."""
    for key in path:
        config = config[key]
    return config


def set_path(config: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set a nested config value in place."""
    for key in path[:-1]:
        config = config[key]
    config[path[-1]] = value


def renumber(name: str, prefix: str, removed: set[int], first: int, by: int) -> str | None:
    """`prefix.K.rest` → None if K is in `removed`, `prefix.(K − by).rest` if K ≥ `first`; others unchanged."""
    match = re.fullmatch(rf"{re.escape(prefix)}\.(\d+)(.*)", name)
    if match is None:
        return name
    index = int(match.group(1))
    if index in removed:
        return None
    return f"{prefix}.{index - by if index >= first else index}{match.group(2)}"


def renumbered(
    net: Network, rename: Callable[[str], str | None], settings: dict[tuple[str, ...], Any],
    state: dict[str, torch.Tensor] | None = None,
) -> Network:
    """`net` with every weight key and linear name passed through `rename` (None: removed), plus new settings;
    `state` (already in the new numbering) overrides or adds weights."""
    moved = {new: value for key, value in net.state.items() if (new := rename(key)) is not None}
    moved.update(state or {})
    linear = [new for name in net.linear if (new := rename(name)) is not None]
    return net.with_config(linear=linear, settings=settings, state=moved)


@dataclass(frozen=True)
class BlockSite:
    """Where an EDSR-style encoder keeps its residual blocks, and the config key of their count."""

    prefix: str
    count_key: tuple[str, ...]

    def block_of(self, activation: str) -> int | None:
        """The index of the residual block whose ReLU is `activation`, None if it is not one."""
        match = re.fullmatch(rf"{re.escape(self.prefix)}\.(\d+)\.body\.{RESBLOCK_RELU}", activation)
        return int(match.group(1)) if match else None


def block_site(net: Network) -> BlockSite | None:
    """The residual blocks of the network's encoder, if it has EDSR-style ones."""
    if net.arch == "lite":
        return BlockSite("encoder.body", ("n_resblocks",))
    if net.arch == "liif" and net.config["encoder"].get("name") == "edsr":
        return BlockSite("encoder.body", ("encoder", "n_resblocks"))
    return None


def drop_block(net: Network, site: BlockSite, index: int) -> Network:
    """`net` without residual block `index`: x + body(x) becomes x. Not exact: the fine-tune must recover."""
    count = get_path(net.config, site.count_key)
    if not 0 <= index < count:
        raise ModelError(f"no residual block {index} (the encoder has {count})")

    def rename(key: str) -> str | None:
        return renumber(key, site.prefix, {index}, index + 1, 1)

    return renumbered(net, rename, {site.count_key: count - 1})
