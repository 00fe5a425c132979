"""The model card: one JSON schema for every model we ship or export, stored beside its `.safetensors` weights.

The card carries the architecture spec, so weights plus card are enough to rebuild the module anywhere. It is a
pydantic dataclass: every field is type-checked when a card is read or built, an unknown field is an error (a
misspelt key is never silently dropped), and `docs/schemas/model-card.schema.json` is exported from it.

To add a field, add it below with a default (so existing cards still load) and a `description`, then run
`PYTHONPATH=src python scripts/export_schemas.py` to refresh the schema (tests/test_schemas.py checks it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass

from enlarge.errors import ModelError
from enlarge.validation import validate

CARD_SCHEMA_VERSION = 1
CARD_SUFFIX = ".json"
Precision = Literal["fp32", "bf16"]  # engine.precision.PRECISIONS; the card is read without torch
ROBUST_TWIN = "robust_twin"  # the `extra` entry naming the model that serves this one's compressed JPEGs
MAX_JPEG_QUALITY = 100


@dataclass(config=ConfigDict(extra="forbid"))
class RobustTwin:
    """The model trained on degraded inputs that enlarges this model's JPEGs below a quality threshold instead.

    `below_quality` is measured (`benchmarks/jpeg_routing.py --write-card`): the lowest JPEG quality from which
    this clean model beats its twin; `measured` keeps what that run saw.
    """

    model: str = Field(description="the registered name of the robust model")
    below_quality: int = Field(ge=1, le=MAX_JPEG_QUALITY + 1, description="JPEGs of lower quality go to the twin")
    measured: dict[str, Any] = field(default_factory=dict)


@dataclass(config=ConfigDict(extra="forbid"))
class ModelCard:
    """What a user and the engine need to know about a set of weights."""

    name: str = Field(description="the model's name, as `enlarge models` and results show it")
    arch: str = Field(description="registered architecture (models/architectures.py)")
    config: dict[str, Any] = Field(description="the architecture's settings: build(arch, config)")
    description: str = ""
    parameters: int = Field(0, ge=0)
    macs_per_output_pixel: dict[str, float] = field(default_factory=dict)  # by scale, e.g. {"x4": 12345.0}
    trained_scales: tuple[float, float] = (1.0, 4.0)
    default_precision: Precision = "fp32"
    training: dict[str, Any] = field(default_factory=dict)  # data, licence notes, steps, wall time, precision
    license: str = ""
    evaluation: list[dict[str, Any]] = field(default_factory=list)  # rows as written by `enlarge eval --json`
    extra: dict[str, Any] = field(default_factory=dict)  # calibrations recorded by later tools (precision, routing)
    schema_version: int = CARD_SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def robust_twin(self) -> RobustTwin | None:
        """The robust twin declared in `extra`, validated; None if the card declares none."""
        entry = self.extra.get(ROBUST_TWIN)
        if entry is None:
            return None
        return validate(RobustTwin, entry, f"model card of {self.name}: extra.{ROBUST_TWIN}", error=ModelError)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "card") -> ModelCard:
        """Validate and build a card; ModelError with one line naming the first bad or missing field."""
        return validate(cls, data, source, error=ModelError)

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


def card_schema() -> dict[str, Any]:
    """The JSON schema of a model card file."""
    return TypeAdapter(ModelCard).json_schema()


def card_path_for(weights: Path) -> Path:
    """The card that belongs to a weights file: `NAME.json` beside `NAME.safetensors`."""
    return weights.with_suffix(CARD_SUFFIX)
