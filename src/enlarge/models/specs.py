"""Named models: which architecture and settings a name stands for, and the weights file that ships with it.

This module needs no torch, so listing the models (`enlarge models`, the default model) stays fast. A new named
model is one call, in the spirit of timm's `register_model`:

    register_spec(ModelSpec("detail", "lite", {"n_feats": 48, ...}, "larger lite", bundled="detail"))

`bundled` names `enlarge/weights/NAME.safetensors` with its `NAME.json` card; the architecture is looked up in
`architectures.py` only when the model is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

WEIGHTS_PACKAGE = "enlarge.weights"
WEIGHTS_SUFFIX = ".safetensors"


ROUTE_BLOCK = 8  # LR pixels per side of a routing block unless a companion says otherwise


@dataclass(frozen=True)
class Companion:
    """A little model for Little–Big routing and the routing geometry that pays for this pair.

    `block`: LR pixels per side of a routing block (a patch whose score decides it). `context`: LR pixels of input
    the big encoder sees around routed blocks; None is its whole receptive field (features exactly those of a
    whole-image encode). A deep encoder needs large blocks and a short context for the skipped area to pay.
    """

    name: str
    block: int = ROUTE_BLOCK
    context: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it, and the bundled weights file if one ships."""

    name: str
    arch: str
    config: dict[str, Any]
    description: str
    needs_weights: bool = True
    bundled: str | None = None  # file name in enlarge/weights, without extension
    # The cheaper registered model this one refines, for Little–Big routing (engine/adaptive/); None: the
    # architecture's own little path, if it has one (architectures.LITTLE_PATHS).
    little: Companion | None = None


SPECS: dict[str, ModelSpec] = {}


def register_spec(spec: ModelSpec) -> ModelSpec:
    """Make `spec` loadable by its name; ValueError if the name is taken (two models must never share one)."""
    if spec.name in SPECS:
        raise ValueError(f"model name {spec.name!r} is already registered")
    SPECS[spec.name] = spec
    return spec


def bundled_weights(spec: ModelSpec) -> Path | None:
    """Path of the weights shipped inside the package for `spec`, or None if they are not there."""
    if spec.bundled is None:
        return None
    path = Path(str(resources.files(WEIGHTS_PACKAGE).joinpath(f"{spec.bundled}{WEIGHTS_SUFFIX}")))
    return path if path.is_file() else None


def companion_of(name: str) -> Companion | None:
    """The little companion that the spec named `name` declares; None if there is no such spec or it declares none."""
    spec = SPECS.get(name)
    return spec.little if spec is not None else None


def available(spec: ModelSpec) -> bool:
    """Whether `create(spec.name)` can run without a user-supplied checkpoint."""
    return not spec.needs_weights or bundled_weights(spec) is not None


_EDSR_BASELINE = {"name": "edsr", "n_resblocks": 16, "n_feats": 64}
_RDN = {"name": "rdn", "g0": 64, "n_blocks": 16, "n_layers": 8, "growth": 64}
_LIIF_HIDDEN = [256, 256, 256, 256]
_LITE = {"n_feats": 32, "n_resblocks": 8, "hidden": 64, "head": [32]}
# detail refines lite; its 36-pixel receptive field makes exact windows around 8-pixel blocks cost more than they
# skip, so it routes 32-pixel patches with 4 pixels of context (docs/results/adaptive.md measures both).
_DETAIL_LITTLE = Companion("lite", block=32, context=4)

register_spec(ModelSpec("bicubic", "bicubic", {}, "weight-free bicubic interpolation (MATLAB kernel)",
                        needs_weights=False))
register_spec(ModelSpec("liif-edsr-baseline", "liif", {"encoder": _EDSR_BASELINE, "hidden": _LIIF_HIDDEN},
                        "LIIF with the EDSR-baseline encoder (paper architecture)"))
register_spec(ModelSpec("liif-rdn", "liif", {"encoder": _RDN, "hidden": _LIIF_HIDDEN},
                        "LIIF with the RDN encoder (paper architecture)"))
register_spec(ModelSpec("lite", "lite", _LITE,
                        "light any-scale model for CPUs: slim encoder, split-layer decoder, bicubic skip",
                        bundled="lite"))
register_spec(ModelSpec("lite-real", "lite", _LITE,
                        "lite fine-tuned on real-photo degradations (JPEG, noise, non-antialiased downscaling)",
                        bundled="lite-real"))
_DETAIL = {"n_feats": 64, "n_resblocks": 16, "hidden": 64, "head": [64]}
register_spec(ModelSpec("detail", "lite", _DETAIL,
                        "detailed any-scale model: lite's decoder on an EDSR-baseline-sized encoder",
                        bundled="detail", little=_DETAIL_LITTLE))
register_spec(ModelSpec("detail-real", "lite", _DETAIL,
                        "detail fine-tuned on real-photo degradations (JPEG, noise, non-antialiased downscaling)",
                        bundled="detail-real", little=Companion("lite-real", block=32, context=4)))

# The model used when none is named: the trained CPU model once its weights ship, bicubic until then.
DEFAULT_MODEL = "lite" if available(SPECS["lite"]) else "bicubic"
