"""The model catalogue: every registered model with its size, whether its weights ship, and their licence.

What `enlarge models` and the service's `/v1/models` show. It is built without torch, so listing the models is
instant: parameter counts come from the bundled weights' cards, and for models without bundled weights from
`models/parameter_counts.json`, a table that `scripts/update_parameter_counts.py` regenerates and a test keeps
true. A spec missing from that table (or whose settings changed) is counted by building it on the meta device.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from enlarge.errors import ModelError
from enlarge.models.card import ModelCard, card_path_for
from enlarge.models.specs import SPECS, ModelSpec, available, bundled_weights

PARAMETER_COUNTS_PACKAGE = "enlarge.models"
PARAMETER_COUNTS_FILE = "parameter_counts.json"
BUNDLED, NOT_NEEDED, NOT_BUNDLED = "bundled", "not needed", "not bundled"


@dataclass(frozen=True)
class ModelInfo:
    """One line of `enlarge models`."""

    name: str
    parameters: int
    weights: str  # BUNDLED, NOT_NEEDED or NOT_BUNDLED
    available: bool  # usable by name, without a checkpoint path
    license: str  # licence of the weights, from the model card
    description: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def list_models() -> list[ModelInfo]:
    """Every registered model, in registration order."""
    stored = stored_parameter_counts()
    infos = []
    for spec in SPECS.values():
        weights_path = bundled_weights(spec)
        card = _card(weights_path) if weights_path is not None else None
        if not spec.needs_weights:
            weights, license = NOT_NEEDED, "n/a"
        elif weights_path is None:
            weights, license = NOT_BUNDLED, ""
        elif card is None:
            weights, license = BUNDLED, "unknown (card unreadable)"
        else:
            weights, license = BUNDLED, card.license or "unknown (not in the card)"
        parameters = card.parameters if card is not None and card.parameters else _parameters(spec, stored)
        infos.append(ModelInfo(spec.name, parameters, weights, available(spec), license, spec.description))
    return infos


def is_registered(name: str) -> bool:
    """Whether `name` is a registered model name (not a weights path)."""
    return name in SPECS


def routable_models(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Those of `names` whose architecture has a cheap little path, so they can enlarge adaptively."""
    from enlarge.models.architectures import LITTLE_PATHS

    return tuple(name for name in names if SPECS[name].arch in LITTLE_PATHS)


def stored_parameter_counts() -> dict[str, dict[str, Any]]:
    """The shipped table: spec name → {"arch", "config", "parameters"} (empty if the file is absent)."""
    path = Path(str(resources.files(PARAMETER_COUNTS_PACKAGE).joinpath(PARAMETER_COUNTS_FILE)))
    return json.loads(path.read_text()) if path.is_file() else {}


def count_parameters(spec: ModelSpec) -> int:
    """Parameters of `spec`'s architecture, built on the meta device so nothing is allocated (imports torch)."""
    import torch

    from enlarge.models.architectures import build
    from enlarge.models.contract import parameter_count

    with torch.device("meta"):
        return parameter_count(build(spec.arch, spec.config))


def parameter_table() -> dict[str, dict[str, Any]]:
    """What `parameter_counts.json` should hold for the registered specs (imports torch)."""
    return {
        spec.name: {"arch": spec.arch, "config": spec.config, "parameters": count_parameters(spec)}
        for spec in SPECS.values()
    }


def _parameters(spec: ModelSpec, stored: dict[str, dict[str, Any]]) -> int:
    entry = stored.get(spec.name)
    if entry is not None and entry.get("arch") == spec.arch and entry.get("config") == spec.config:
        return int(entry["parameters"])
    return count_parameters(spec)


def _card(weights_path: Path) -> ModelCard | None:
    try:
        return ModelCard.read(card_path_for(weights_path))
    except ModelError:
        return None
