"""A few hundred seeded fuzz cases (benchmarks/fuzz.py) through the CLI, the API, a real service and batch jobs:
every one ends cleanly; and the harness's checks catch what they count."""

from __future__ import annotations

import io
import json
import random
import sys
from types import SimpleNamespace

import pytest
from PIL import Image

from conftest import REPO

pytest.importorskip("fastapi", reason="the serve extra is not installed")
sys.path.insert(0, str(REPO / "benchmarks"))

import fuzz  # noqa: E402

CASES = 300  # about 30 of them batch items (a few jobs) and 90 service requests: well under 30 s on an idle CPU


@pytest.mark.slow
def test_fuzzed_inputs_end_cleanly() -> None:
    outcomes = fuzz.fuzz(CASES, seed=0)
    assert len(outcomes) == CASES
    assert {o.front for o in outcomes} == set(fuzz.FRONTS)
    bad = [f"{o.front} {o.kind}: {o.detail} [{o.case}]" for o in outcomes if not o.clean]
    assert bad == []


def test_cases_are_seeded_and_add_up() -> None:
    assert fuzz.make_case(random.Random(7)) == fuzz.make_case(random.Random(7))
    planned = fuzz.plan(CASES, seed=0)
    assert planned == fuzz.plan(CASES, seed=0)
    assert sum(len(case.kinds) for case in planned) == CASES
    batch = [case for case in planned if case.front == "batch"]
    assert batch and all(len(case.inputs) == len(case.kinds) for case in batch)


def test_stderr_lines_that_are_not_ours_are_caught() -> None:
    log = "INFO:     Started server process [1]\n<tifffile.TiffTag 256 @10> invalid data type 132\n"
    stray = fuzz.Outcome("service", "x")
    fuzz.judge_stderr(stray, log, fuzz.OURS_SERVER)
    assert stray.stray and not stray.traceback and not stray.clean
    crashed = fuzz.Outcome("cli", "x")
    fuzz.judge_stderr(crashed, "error: a.png: bad\nTraceback (most recent call last):\n", fuzz.OURS_CLI)
    assert crashed.traceback
    usage = fuzz.Outcome("cli", "x")
    fuzz.judge_stderr(usage, "usage: enlarge upscale [-h]\n       [--x]\nenlarge upscale: error: bad\n", fuzz.OURS_CLI)
    assert usage.clean


def response(status: int, body: bytes) -> SimpleNamespace:
    return SimpleNamespace(status_code=status, content=body, text=body.decode("latin-1"),
                           json=lambda: json.loads(body))


def test_http_answers_are_judged() -> None:
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    verdicts = {}
    for name, answer in {
        "image": response(200, png.getvalue()),
        "cut image": response(200, png.getvalue()[: len(png.getvalue()) // 2]),
        "json error": response(400, b'{"error": "bad"}'),
        "html error": response(400, b"<html>bad</html>"),
        "5xx": response(500, b'{"error": "boom"}'),
    }.items():
        outcome = fuzz.Outcome("api", name)
        fuzz.judge_response(outcome, answer)
        verdicts[name] = (outcome.clean, outcome.partial, outcome.server_error)
    assert verdicts == {
        "image": (True, False, False),
        "cut image": (False, True, False),
        "json error": (True, False, False),
        "html error": (False, False, False),
        "5xx": (False, False, True),
    }
