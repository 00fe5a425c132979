"""Named model specs and loading: `create(name)` and `load_model(name_or_path)` → module + Descriptor.

The network code (encoders, liif, lite, bicubic) knows nothing of files or cards; this module pairs a module
with what the engine needs to know about it, so the engine never special-cases a model by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from enlarge.errors import ModelError
from enlarge.models.bicubic import Bicubic
from enlarge.models.card import ModelCard, card_path_for
from enlarge.models.liif import LIIF
from enlarge.models.lite import Lite

ARCHS: dict[str, type[nn.Module]] = {"liif": LIIF, "lite": Lite, "bicubic": Bicubic}
# Architectures whose output is a weight-free registered model plus a predicted residual: that model is their
# cheap "little" path, so adaptive enlargement can decode the residual only where it pays (engine/adaptive.py).
LITTLE_PATHS: dict[str, str] = {"lite": "bicubic"}
WEIGHTS_PACKAGE = "enlarge.weights"
DEFAULT_TRAINED_SCALES = (1.0, 4.0)
LINEAR_ACTIVATIONS = "linear_activations"  # config key: ReLUs replaced by identity (enlarge compress)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it, and the bundled weights file if one ships."""

    name: str
    arch: str
    config: dict[str, Any]
    description: str
    needs_weights: bool = True
    bundled: str | None = None  # file name in enlarge/weights, without extension


@dataclass
class Descriptor:
    """Everything the engine needs to know about a model, apart from the module itself."""

    name: str
    arch: str
    config: dict[str, Any]
    receptive_field: int
    trained_scales: tuple[float, float] = DEFAULT_TRAINED_SCALES
    default_precision: str = "fp32"
    has_weights: bool = False
    card: ModelCard | None = None
    source: str = "registry"  # where the weights came from (bundled file, path)
    little: str | None = None  # registered model equal to this one minus its residual (LITTLE_PATHS)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    """A ready-to-run module (eval mode) and its descriptor."""

    module: nn.Module
    descriptor: Descriptor

    @property
    def parameters(self) -> int:
        return parameter_count(self.module)


_EDSR_BASELINE = {"name": "edsr", "n_resblocks": 16, "n_feats": 64}
_RDN = {"name": "rdn", "g0": 64, "n_blocks": 16, "n_layers": 8, "growth": 64}
_LIIF_HIDDEN = [256, 256, 256, 256]

SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("bicubic", "bicubic", {}, "weight-free bicubic interpolation (MATLAB kernel)", needs_weights=False),
        ModelSpec("liif-edsr-baseline", "liif", {"encoder": _EDSR_BASELINE, "hidden": _LIIF_HIDDEN},
                  "LIIF with the EDSR-baseline encoder (paper architecture)"),
        ModelSpec("liif-rdn", "liif", {"encoder": _RDN, "hidden": _LIIF_HIDDEN},
                  "LIIF with the RDN encoder (paper architecture)"),
        ModelSpec("lite", "lite", {"n_feats": 32, "n_resblocks": 8, "hidden": 64, "head": [32]},
                  "light any-scale model for CPUs: slim encoder, split-layer decoder, bicubic skip", bundled="lite"),
        ModelSpec("lite-real", "lite", {"n_feats": 32, "n_resblocks": 8, "hidden": 64, "head": [32]},
                  "lite fine-tuned on real-photo degradations (JPEG, noise, non-antialiased downscaling)",
                  bundled="lite-real"),
        ModelSpec("detail", "lite", {"n_feats": 64, "n_resblocks": 16, "hidden": 64, "head": [64]},
                  "detailed any-scale model: lite's decoder on an EDSR-baseline-sized encoder", bundled="detail"),
    )
}


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


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
    """The descriptor of a built module: receptive field from the module, the rest from the card if any."""
    return Descriptor(
        name=name,
        arch=arch,
        config=config,
        receptive_field=int(module.receptive_field),
        trained_scales=card.trained_scales if card else DEFAULT_TRAINED_SCALES,
        default_precision=card.default_precision if card else "fp32",
        has_weights=has_weights,
        card=card,
        source=source,
        little=LITTLE_PATHS.get(arch),
    )


def bundled_weights(spec: ModelSpec) -> Path | None:
    """Path of the weights shipped inside the package for `spec`, or None if they are not there."""
    if spec.bundled is None:
        return None
    path = Path(str(resources.files(WEIGHTS_PACKAGE).joinpath(f"{spec.bundled}.safetensors")))
    return path if path.is_file() else None


def available(spec: ModelSpec) -> bool:
    """Whether `create(spec.name)` can run without a user-supplied checkpoint."""
    return not spec.needs_weights or bundled_weights(spec) is not None


def create(name: str, pretrained: bool = True) -> LoadedModel:
    """Build a registered model; with `pretrained`, load its bundled weights or refuse (never random as trained)."""
    if name not in SPECS:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(SPECS))} (or pass a weights file path)")
    spec = SPECS[name]
    if pretrained and spec.needs_weights:
        path = bundled_weights(spec)
        if path is None:
            raise ModelError(
                f"model {name!r} has no bundled weights; pass a checkpoint with --model PATH "
                "(an official LIIF .pth or our .safetensors)"
            )
        return load_safetensors(path)
    module = build(spec.arch, spec.config).eval()
    return LoadedModel(module, describe(name, spec.arch, spec.config, module, has_weights=not spec.needs_weights))


def load_safetensors(path: Path) -> LoadedModel:
    """Our own weights: `NAME.safetensors` plus the `NAME.json` card that says how to build the module."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card_path = card_path_for(path)
    if not card_path.exists():
        raise ModelError(f"{path} has no model card {card_path.name} beside it; weights need their card to load")
    card = ModelCard.read(card_path)
    module = build(card.arch, card.config)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"weights file {path} is corrupt or not safetensors: {exc}") from None
    load_state_strict(module, state, str(path))
    descriptor = describe(card.name, card.arch, card.config, module, has_weights=True, card=card, source=str(path))
    return LoadedModel(module.eval(), descriptor)


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict that must match the module key for key and shape for shape."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise ModelError(f"{source} does not match its architecture ({detail})")
    module.load_state_dict(state)


def load_model(name_or_path: str | Path) -> LoadedModel:
    """A registered name, our `.safetensors` (card beside it), or an official LIIF `.pth` checkpoint."""
    text = str(name_or_path)
    if text in SPECS:
        return create(text)
    path = Path(text).expanduser()
    if not path.exists():
        raise ModelError(
            f"unknown model {text!r}: not a registered name ({', '.join(sorted(SPECS))}) nor an existing file"
        )
    if path.is_dir():
        raise ModelError(f"model path {path} is a folder; pass a .safetensors or .pth file")
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    from enlarge.models.official import load_official

    return load_official(path)
