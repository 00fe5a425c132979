"""Loading models by name or file: `create(name)` and `load_model(name_or_path)` → module + Descriptor.

The network code (encoders, liif, lite, bicubic) knows nothing of files or cards; this module pairs a module
with what the engine needs to know about it, so the engine never special-cases a model by name. Names come from
`specs.py`, architectures from `architectures.py`, official LIIF checkpoints from `official.py`; their public
names are importable from here too, as they always were.
"""

from __future__ import annotations

import difflib
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

ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = b"\x80"  # the PROTO opcode that starts every pickle of protocol 2 and later (legacy torch.save)

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
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(SPECS))} (or give a weights file path)")
    spec = SPECS[name]
    if pretrained and spec.needs_weights:
        path = bundled_weights(spec)
        if path is None:
            raise ModelError(
                f"model {name!r} has no bundled weights; give the path of a checkpoint instead "
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
    """A registered name, our `.safetensors` (card beside it), or an official LIIF `.pth` checkpoint.

    Anything else is refused with one ModelError line before a loader sees it: an unknown name (with the
    nearest registered one), a folder, an unreadable file, or a file that is neither a PyTorch checkpoint
    nor safetensors.
    """
    text = str(name_or_path)
    if text in SPECS:
        return create(text)
    path = Path(text).expanduser()
    if not path.exists():
        close = difflib.get_close_matches(text, list(SPECS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ModelError(
            f"unknown model {text!r}: not a registered name nor an existing file; {hint}"
            f"known: {', '.join(sorted(SPECS))}"
        )
    if path.is_dir():
        raise ModelError(f"model path {path} is a folder; give a .safetensors or .pth file")
    if path.suffix == WEIGHTS_SUFFIX:
        return load_safetensors(path)
    if not _looks_like_checkpoint(path):
        raise ModelError(
            f"{path} is not a model file: expected our .safetensors weights (with the .json card beside them) "
            "or an official LIIF .pth checkpoint"
        )
    return load_official(path)


def _looks_like_checkpoint(path: Path) -> bool:
    """Whether `path` starts as a PyTorch checkpoint does: a zip archive (torch.save since 1.6) or a pickle."""
    try:
        with path.open("rb") as stream:
            head = stream.read(len(ZIP_MAGIC))
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}; check its permissions") from None
    return head.startswith((ZIP_MAGIC, PICKLE_MAGIC))
