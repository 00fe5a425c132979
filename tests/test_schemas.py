"""Settings files against their pydantic models: the exported JSON schemas in docs/schemas are up to date, the
shipped files satisfy them, and a bad field is one line naming it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from enlarge.errors import ConfigError, ModelError
from enlarge.models.card import ModelCard
from enlarge.validation import error_line, validate

sys.path.insert(0, str(REPO / "scripts"))
from export_schemas import FOLDER, SCHEMAS, schema_text  # noqa: E402

SHIPPED_CARD = REPO / "src" / "enlarge" / "weights" / "lite.json"
EXAMPLE_JOB = REPO / "examples" / "job.yaml"


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_exported_schemas_are_up_to_date(name: str) -> None:
    written = FOLDER / name
    assert written.is_file(), f"{written} missing: run PYTHONPATH=src python scripts/export_schemas.py"
    assert written.read_text() == schema_text(SCHEMAS[name]), "stale: run PYTHONPATH=src python scripts/export_schemas.py"


@pytest.mark.parametrize(("name", "document"), [
    ("model-card.schema.json", SHIPPED_CARD),
    ("job.schema.json", EXAMPLE_JOB),
    *(("train-config.schema.json", path) for path in sorted((REPO / "configs").glob("*.yaml"))),
], ids=lambda item: item.name if isinstance(item, Path) else item)
def test_shipped_files_satisfy_their_schema(name: str, document: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = yaml.safe_load(document.read_text())  # JSON is YAML too
    jsonschema.validate(data, json.loads((FOLDER / name).read_text()))


def test_shipped_card_loads() -> None:
    card = ModelCard.read(SHIPPED_CARD)
    assert card.name == "lite" and card.trained_scales == (1.0, 4.0) and card.parameters > 0


@pytest.mark.parametrize(("change", "message"), [
    ({"parameters": "many"}, "parameters: input should be a valid integer"),
    ({"default_precision": "fp16"}, "default_precision: input should be 'fp32' or 'bf16'"),
    ({"colour": "red"}, "colour is not a known field; known: name, arch, config"),
    ({"trained_scales": [1.0]}, "trained_scales.1 is missing"),
])
def test_bad_card_field_is_one_line_naming_it(tmp_path: Path, change: dict, message: str) -> None:
    data = {**json.loads(SHIPPED_CARD.read_text()), **change}
    path = tmp_path / "card.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError) as error:
        ModelCard.read(path)
    line = str(error.value)
    assert "\n" not in line and line.startswith(f"{path}: ") and message in line, line


def test_missing_card_field_is_named() -> None:
    with pytest.raises(ModelError, match=r"^card: config is missing$"):
        ModelCard.from_dict({"name": "x", "arch": "lite"})


def test_error_line_counts_the_other_problems() -> None:
    errors = [{"type": "missing", "loc": ("a", "b"), "msg": "Field required"}, {"type": "x", "loc": ("c",)}]
    assert error_line(errors) == "a.b is missing (and 1 more)"


def test_validate_raises_config_error_by_default() -> None:
    from enlarge.batch.spec import RunSpec

    with pytest.raises(ConfigError, match=r"^job\.yaml: workers: input should be greater than or equal to 0, got -1$"):
        validate(RunSpec, {"workers": -1}, "job.yaml")
