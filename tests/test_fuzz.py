"""A few hundred seeded fuzz cases (benchmarks/fuzz.py) through the CLI and the API: every one ends cleanly."""

from __future__ import annotations

import sys

import pytest

from conftest import REPO

pytest.importorskip("fastapi", reason="the serve extra is not installed")
sys.path.insert(0, str(REPO / "benchmarks"))

import fuzz  # noqa: E402

CASES = 300


@pytest.mark.slow
def test_fuzzed_inputs_end_cleanly() -> None:
    outcomes = fuzz.fuzz(CASES, seed=0)
    assert len(outcomes) == CASES
    assert {o.front for o in outcomes} == {"cli", "api"}
    bad = [f"{o.front} {o.kind}: {o.detail}" for o in outcomes if not o.clean]
    assert bad == []


def test_cases_are_seeded() -> None:
    import random

    assert fuzz.make_case(random.Random(7)) == fuzz.make_case(random.Random(7))
