"""Official LIIF checkpoints (yinboc/liif `save` format) → our modules, loaded safely (`weights_only=True`).

Layout: `{'model': {'name': 'liif', 'args': {'encoder_spec': ..., 'imnet_spec': ...}, 'sd': state_dict}, ...}`.
Our modules use the official parameter names, so only the unused mean-shift convolutions are dropped.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from enlarge.errors import ModelError
from enlarge.models.architectures import build, describe, load_state_strict
from enlarge.models.contract import LoadedModel

IGNORED_PREFIXES = ("encoder.sub_mean.", "encoder.add_mean.")  # defined but unused in the official forward
# The official encoder specs (with no_upsampling) and the settings of ours that match them.
OFFICIAL_ENCODERS: dict[str, dict[str, Any]] = {
    "edsr-baseline": {"name": "edsr", "n_resblocks": 16, "n_feats": 64},
    "rdn": {"name": "rdn", "g0": 64, "n_blocks": 16, "n_layers": 8, "growth": 64},
}


def config_from_spec(spec: dict[str, Any], source: str) -> dict[str, Any]:
    """Translate the official `{'name': 'liif', 'args': {...}}` spec into our LIIF settings."""
    if spec.get("name") != "liif":
        raise ModelError(f"{source} holds a {spec.get('name')!r} model; only LIIF checkpoints are supported")
    args = spec.get("args", {})
    enc = args.get("encoder_spec", {})
    enc_args = enc.get("args", {})
    if enc.get("name") not in OFFICIAL_ENCODERS or not enc_args.get("no_upsampling", False):
        raise ModelError(f"{source}: unsupported LIIF encoder {enc.get('name')!r} (supported: edsr-baseline, rdn)")
    imnet = args.get("imnet_spec", {})
    if imnet.get("name") != "mlp":
        raise ModelError(f"{source}: unsupported LIIF decoder {imnet.get('name')!r} (expected mlp)")
    return {
        "encoder": dict(OFFICIAL_ENCODERS[enc["name"]]),
        "hidden": list(imnet.get("args", {}).get("hidden_list", [256, 256, 256, 256])),
        "local_ensemble": bool(args.get("local_ensemble", True)),
        "feat_unfold": bool(args.get("feat_unfold", True)),
        "cell_decode": bool(args.get("cell_decode", True)),
    }


def load_official(path: Path) -> LoadedModel:
    """Load an official LIIF `.pth`; a corrupt or foreign file raises ModelError, never runs arbitrary code."""
    source = str(path)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 15": a damaged file, which is ours to say
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, UnicodeDecodeError):  # a damaged pickle or zip fails in any of these ways
        # PyTorch's own message suggests weights_only=False, which would run untrusted code: never pass it on
        raise ModelError(f"{source} is not a loadable checkpoint (corrupt, or not a PyTorch file)") from None
    spec = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(spec, dict) or "sd" not in spec:
        raise ModelError(f"{source} is not an official LIIF checkpoint (no 'model' with 'sd'); use .safetensors")
    try:
        config = config_from_spec(spec, source)
        state = {k: v for k, v in spec["sd"].items() if not k.startswith(IGNORED_PREFIXES)}
    except (AttributeError, TypeError):  # a field of the wrong type somewhere in the nested layout
        raise ModelError(f"{source} is not an official LIIF checkpoint (its layout is not LIIF's); use .safetensors") from None
    if not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise ModelError(f"{source}: its state dict holds entries that are not named tensors; not a LIIF checkpoint")
    module = build("liif", config)
    load_state_strict(module, state, source)
    name = f"liif-{ckpt['model']['args']['encoder_spec']['name']}:{path.name}"
    return LoadedModel(module.eval(), describe(name, "liif", config, module, has_weights=True, source=source))
