"""Architectures: the network classes a model card or spec can name, and how to build and describe one.

Open for extension, as LIIF's `models.register` / `models.make`: a new network registers itself with

    @register_arch("mynet")
    class MyNet(nn.Module): ...            # encode / query / receptive_field, see contract.SuperResolver

and is then buildable from any spec or card whose `arch` is "mynet"; nothing here needs editing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from enlarge.errors import ModelError
from enlarge.models.bicubic import Bicubic
from enlarge.models.card import ModelCard
from enlarge.models.contract import DEFAULT_PRECISION, DEFAULT_TRAINED_SCALES, Descriptor, check_contract
from enlarge.models.liif import LIIF
from enlarge.models.lite import Lite
from enlarge.models.specs import ROUTE_BLOCK, Companion, companion_of

LINEAR_ACTIVATIONS = "linear_activations"  # config key: ReLUs replaced by identity (enlarge compress)
MAX_SHOWN_KEYS = 3  # how many mismatching weight names an error lists

ARCHS: dict[str, type[nn.Module]] = {}
# Architectures whose output is a weight-free registered model plus a predicted residual: that model is their
# cheap "little" path, so adaptive enlargement can decode the residual only where it pays (engine/adaptive/).
LITTLE_PATHS: dict[str, str] = {}

Module = TypeVar("Module", bound=type[nn.Module])


def register_arch(name: str, *, little: str | None = None) -> Callable[[Module], Module]:
    """Class decorator: make the network buildable as `arch: name`; `little` names its weight-free little path."""

    def add(cls: Module) -> Module:
        if name in ARCHS:
            raise ValueError(f"architecture {name!r} is already registered")
        ARCHS[name] = cls
        if little is not None:
            LITTLE_PATHS[name] = little
        return cls

    return add


register_arch("liif")(LIIF)
register_arch("lite", little="bicubic")(Lite)
register_arch("bicubic")(Bicubic)


def build(arch: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate an architecture with random weights (training, tests); raises ModelError if unknown.

    `config` may name `linear_activations`: rectifiers that run as identity in a depth-reduced model.
    """
    if arch not in ARCHS:
        raise ModelError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHS))}")
    settings = dict(config)
    linear = settings.pop(LINEAR_ACTIVATIONS, [])
    try:
        module = ARCHS[arch](**settings)
    except TypeError as exc:
        raise ModelError(f"invalid settings for architecture {arch!r}: {exc}") from None
    linearize(module, linear)
    return module


def linearize(module: nn.Module, names: list[str]) -> None:
    """Replace the named ReLU modules of `module` with identity, in place (parameter names do not change)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelError(f"{LINEAR_ACTIVATIONS} must be a list of module names, got {names!r}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        try:
            layer = module.get_submodule(name)
        except AttributeError:
            raise ModelError(f"{LINEAR_ACTIVATIONS}: {name!r} is not a module of this architecture") from None
        if not isinstance(layer, nn.ReLU):
            raise ModelError(f"{LINEAR_ACTIVATIONS}: {name!r} is a {type(layer).__name__}, not a ReLU")
        setattr(module.get_submodule(parent_name), child, nn.Identity())


def describe(name: str, arch: str, config: dict[str, Any], module: nn.Module, *, has_weights: bool,
             card: ModelCard | None = None, source: str = "registry") -> Descriptor:
    """The descriptor of a built module, checked against the model contract once, here: receptive field from
    the module, the little path from the spec of that name (else the architecture's), the rest from the card."""
    check_contract(module, source)
    companion = companion_of(name) or (Companion(LITTLE_PATHS[arch]) if arch in LITTLE_PATHS else None)
    return Descriptor(
        name=name,
        arch=arch,
        config=config,
        receptive_field=int(module.receptive_field),
        trained_scales=card.trained_scales if card else DEFAULT_TRAINED_SCALES,
        default_precision=card.default_precision if card else DEFAULT_PRECISION,
        has_weights=has_weights,
        card=card,
        source=source,
        little=companion.name if companion else None,
        route_block=companion.block if companion else ROUTE_BLOCK,
        route_context=companion.context if companion else None,
    )


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict that must match the module key for key and shape for shape."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:MAX_SHOWN_KEYS])}{' …' if len(keys) > MAX_SHOWN_KEYS else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise ModelError(f"{source} does not match its architecture ({detail})")
    module.load_state_dict(state)
