"""Write the JSON schemas of the project's settings files into docs/schemas/ (after changing a file model).

    PYTHONPATH=src python scripts/export_schemas.py

tests/test_schemas.py fails while a written schema differs from what the code would export.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enlarge.batch.spec import job_schema
from enlarge.models.card import card_schema
from enlarge.training.config import train_config_schema

FOLDER = Path(__file__).resolve().parents[1] / "docs" / "schemas"
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "job.schema.json": job_schema,
    "model-card.schema.json": card_schema,
    "train-config.schema.json": train_config_schema,
}


def schema_text(make: Callable[[], dict[str, Any]]) -> str:
    """A schema as it is stored: sorted keys, two-space indent, final newline."""
    return json.dumps(make(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name, make in SCHEMAS.items():
        (FOLDER / name).write_text(schema_text(make))
        print(f"wrote {FOLDER / name}")


if __name__ == "__main__":
    main()
