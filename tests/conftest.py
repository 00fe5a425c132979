"""Shared test helpers: where the shared data lives, and tiny random-weight models for fast tests."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from enlarge import procfs

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures" / "liif-official"
BENCHMARK = SHARED / "data" / "benchmark"


def require(path: Path, what: str) -> Path:
    """Skip the calling test with a clear reason when shared data is absent (e.g. a clone without ../shared)."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (the ../shared folder beside the repo is absent)")
    return path


def descendants(pid: int) -> set[int]:
    """Every living process below `pid`, from /proc (Linux)."""
    return set(procfs.descendants(pid))


def survivors(pids: set[int], wait_s: float) -> list[int]:
    """Those of `pids` still alive after up to `wait_s` seconds; they are then killed, so no test leaves any."""
    end = time.monotonic() + wait_s
    while any(procfs.alive(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.1)
    left = sorted(pid for pid in pids if procfs.alive(pid))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left
