"""`enlarge models`: the registered models, their size, whether their weights ship, and the weights' licence."""

from __future__ import annotations

import argparse
import json

from enlarge.catalogue import ModelInfo, list_models
from enlarge.models.specs import DEFAULT_MODEL

COLUMNS = ("NAME", "PARAMS", "WEIGHTS", "LICENCE", "DESCRIPTION")
COLUMN_GAP = "  "
DEFAULT_MARK = " (default)"
MILLION = 1_000_000


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `models` command to the `enlarge` parser."""
    parser = sub.add_parser("models", description="List the registered models.")
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the model table (or JSON lines)."""
    infos = list_models()
    if args.json:
        for info in infos:
            print(json.dumps({**info.to_dict(), "default": info.name == DEFAULT_MODEL}))
        return 0
    rows = [COLUMNS] + [row(info) for info in infos]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    for r in rows:
        print(COLUMN_GAP.join([cell.ljust(width) for cell, width in zip(r, widths)] + [r[-1]]).rstrip())
    return 0


def row(info: ModelInfo) -> tuple[str, str, str, str, str]:
    """One table row: the default model marked, parameters in millions, a dash for an unknown licence."""
    name = info.name + (DEFAULT_MARK if info.name == DEFAULT_MODEL else "")
    params = f"{info.parameters / MILLION:.2f}M" if info.parameters else "0"
    return name, params, info.weights, info.license or "-", info.description
