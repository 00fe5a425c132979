"""Shared test helpers: where the shared data lives, and tiny random-weight models for fast tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures" / "liif-official"
BENCHMARK = SHARED / "data" / "benchmark"


def require(path: Path, what: str) -> Path:
    """Skip the calling test with a clear reason when shared data is absent (e.g. a clone without ../shared)."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (the ../shared folder beside the repo is absent)")
    return path
