"""The model card: one JSON schema for every model we ship or export, stored beside its `.safetensors` weights.

The card carries the architecture spec, so weights plus card are enough to rebuild the module anywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from enlarge.errors import ModelError

CARD_SCHEMA_VERSION = 1


@dataclass
class ModelCard:
    """What a user and the engine need to know about a set of weights."""

    name: str
    arch: str
    config: dict[str, Any]
    description: str = ""
    parameters: int = 0
    macs_per_output_pixel: dict[str, float] = field(default_factory=dict)  # by scale, e.g. {"x4": 12345.0}
    trained_scales: tuple[float, float] = (1.0, 4.0)
    default_precision: str = "fp32"
    training: dict[str, Any] = field(default_factory=dict)  # data, licence notes, steps, wall time, precision
    license: str = ""
    evaluation: list[dict[str, Any]] = field(default_factory=list)  # rows as written by `enlarge eval --json`
    extra: dict[str, Any] = field(default_factory=dict)  # calibrations recorded by later tools (precision, routing)
    schema_version: int = CARD_SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "card") -> ModelCard:
        """Validate and build a card; a foreign or incomplete file raises ModelError naming what is missing."""
        missing = [k for k in ("name", "arch", "config") if k not in data]
        if missing:
            raise ModelError(f"{source} is not an enlarge model card (missing {', '.join(missing)})")
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "trained_scales" in kwargs:
            kwargs["trained_scales"] = tuple(kwargs["trained_scales"])
        return cls(**kwargs)

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"model card {path} not found: weights need their NAME.json card beside them") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"model card {path} is unreadable or not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ModelError(f"model card {path} is not a JSON object")
        return cls.from_dict(data, source=str(path))

    def write(self, path: Path) -> None:
        from enlarge.fileutil import atomic_write_text

        atomic_write_text(path, self.to_json())


def card_path_for(weights: Path) -> Path:
    """The card that belongs to a weights file: `NAME.json` beside `NAME.safetensors`."""
    return weights.with_suffix(".json")
