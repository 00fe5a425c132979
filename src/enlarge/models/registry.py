"""Loading models by name or file: `create(name)` and `load_model(name_or_path)` → module + Descriptor.

The network code (encoders, liif, lite, bicubic) knows nothing of files or cards; this module pairs a module
with what the engine needs to know about it, so the engine never special-cases a model by name. Names come from
`specs.py`, architectures from `architectures.py`, official LIIF checkpoints from `official.py`; their public
names are importable from here too, as they always were.
"""

from __future__ import annotations

from pathlib import Path

from enlarge.errors import ModelError
from enlarge.models.architectures import (
    ARCHS,
    LINEAR_ACTIVATIONS,
    LITTLE_PATHS,
    build,
    describe,
    linearize,
    load_state_strict,
    register_arch,
)
from enlarge.models.card import ModelCard, card_path_for
from enlarge.models.contract import DEFAULT_TRAINED_SCALES, Descriptor, LoadedModel, parameter_count
from enlarge.models.official import load_official
from enlarge.models.specs import (
    SPECS,
    WEIGHTS_PACKAGE,
    WEIGHTS_SUFFIX,
    ModelSpec,
    available,
    bundled_weights,
    register_spec,
)

__all__ = [
    "ARCHS",
    "DEFAULT_TRAINED_SCALES",
    "LINEAR_ACTIVATIONS",
    "LITTLE_PATHS",
    "SPECS",
    "WEIGHTS_PACKAGE",
    "Descriptor",
    "LoadedModel",
    "ModelSpec",
    "available",
    "build",
    "bundled_weights",
    "create",
    "describe",
    "linearize",
    "load_model",
    "load_safetensors",
    "load_state_strict",
    "parameter_count",
    "register_arch",
    "register_spec",
]


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
    if path.suffix == WEIGHTS_SUFFIX:
        return load_safetensors(path)
    return load_official(path)
