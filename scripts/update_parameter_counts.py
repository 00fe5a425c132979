"""Regenerate src/enlarge/models/parameter_counts.json after registering or changing a model spec.

    PYTHONPATH=src python scripts/update_parameter_counts.py

The table lets `enlarge models` list parameter counts without importing torch; tests/test_catalogue.py fails
while it is out of date.
"""

from __future__ import annotations

import json
from pathlib import Path

from enlarge.catalogue import PARAMETER_COUNTS_FILE, parameter_table

TARGET = Path(__file__).resolve().parents[1] / "src" / "enlarge" / "models" / PARAMETER_COUNTS_FILE


def main() -> None:
    TARGET.write_text(json.dumps(parameter_table(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
