"""The thread policy (threads.py): the decision as a pure function, the environment set before torch loads, and
workers that die with their parent (lifetime.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO
from enlarge import procfs
from enlarge.lifetime import ORPHAN_EXIT_CODE
from enlarge.threads import (
    GOMP_SPIN_ENV,
    KMP_BLOCKTIME_ENV,
    SHORT_SPIN,
    THREADS_ENV,
    WAIT_POLICY_ENV,
    CpuSample,
    free_of,
    plan_threads,
    workers_that_fit,
)

TIMEOUT_S = 120
REAP_WAIT_S = 10  # the guard looks every second
PEAK_PROBE_BYTES = 200 * 1024 * 1024  # larger than the test process holds without it


@pytest.mark.parametrize(
    ("usable", "busy", "workers", "threads"),
    [
        (8, 0.0, 1, 8),  # idle: every CPU
        (8, 0.3, 1, 8),  # a little background noise holds no core
        (8, 1.0, 1, 7),  # one busy process: one core fewer
        (2, 1.0, 1, 1),  # the case of issue 19: one of two cores busy → one thread
        (2, 5.0, 1, 1),  # overloaded: still one thread
        (8, 0.0, 3, 2),  # shared out among workers, rounded down
        (2, 0.0, 4, 1),  # more workers than CPUs: one each
    ],
)
def test_threads_follow_the_free_cpus(usable: int, busy: float, workers: int, threads: int) -> None:
    plan = plan_threads(usable, busy, {}, workers=workers)
    assert plan.threads == threads
    assert plan.env == {GOMP_SPIN_ENV: SHORT_SPIN, KMP_BLOCKTIME_ENV: "0"}


def test_the_users_settings_win() -> None:
    assert plan_threads(8, 4.0, {}, requested=6).threads == 6  # --threads
    assert plan_threads(8, 4.0, {THREADS_ENV: "3"}).threads == 3
    assert plan_threads(8, 0.0, {THREADS_ENV: "junk"}).threads == 8  # not a count: ignored
    assert plan_threads(8, 0.0, {WAIT_POLICY_ENV: "PASSIVE"}).env == {}  # the user chose how OpenMP waits
    assert plan_threads(8, 0.0, {GOMP_SPIN_ENV: "5"}).env == {KMP_BLOCKTIME_ENV: "0"}


def test_free_cpus_and_worker_fit() -> None:
    assert free_of(4, 0.49) == 4 and free_of(4, 0.51) == 3 and free_of(1, 3.0) == 1
    assert workers_that_fit(1, 1, limit=3, cpus=8) == 3
    assert workers_that_fit(2, 1, cpus=8) == 4
    assert workers_that_fit(1, 2**62, cpus=8) == 1  # memory for less than one: still one


def test_cpu_sample_removes_this_process_own_use() -> None:
    start = CpuSample(wall_s=0.0, busy_s=10.0, own_s=1.0)
    later = CpuSample(wall_s=2.0, busy_s=14.0, own_s=3.0)  # 4 CPU-s busy in 2 s, 2 of them ours
    assert start.busy_elsewhere(later) == pytest.approx(1.0)


def test_the_cli_sets_the_spin_before_torch_loads(tmp_path) -> None:
    """In a fresh process: when `import torch` starts, the short spin is already in the environment."""
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    code = textwrap.dedent(f"""
        import os, sys
        seen = {{}}
        class Spy:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" and not seen:
                    seen.update(spin=os.environ.get({GOMP_SPIN_ENV!r}), blocktime=os.environ.get({KMP_BLOCKTIME_ENV!r}))
                return None
        sys.meta_path.insert(0, Spy())
        from enlarge.cli.main import main
        code = main(["upscale", {str(tmp_path / "in.png")!r}, "--scale", "2", "--model", "bicubic",
                     "-o", {str(tmp_path / "out.png")!r}])
        print(seen.get("spin"), seen.get("blocktime"), code)
    """)
    env = {key: value for key, value in os.environ.items() if key not in (GOMP_SPIN_ENV, KMP_BLOCKTIME_ENV)}
    env["PYTHONPATH"] = str(REPO / "src")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.stdout.splitlines()[-1].split() == [SHORT_SPIN, "0", "0"], result.stderr


def test_descendants_are_reaped_when_the_parent_is_killed() -> None:
    """reap_when_gone: a grandchild that would outlive a SIGKILLed parent is killed by the guard."""
    code = textwrap.dedent("""
        import subprocess, sys, time
        from enlarge.lifetime import reap_when_gone
        reap_when_gone()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        time.sleep(3)  # the guard has seen the child (it looks every second)
        print(child.pid, flush=True)
        time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    parent = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    grandchild = int(parent.stdout.readline())
    assert procfs.read_stat(grandchild) is not None
    parent.kill()
    parent.wait(TIMEOUT_S)
    deadline = time.monotonic() + REAP_WAIT_S
    while procfs.alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not procfs.alive(grandchild)


def test_a_worker_that_starts_after_its_parent_died_ends_at_once() -> None:
    """A slow-starting worker already re-parented when it binds itself: told its parent's pid, it sees the orphaning
    (it would otherwise take init for its parent and live on: the flaky survivor of a killed `enlarge batch`)."""
    code = "import time\nfrom enlarge.lifetime import die_with_parent\ndie_with_parent(-1)\ntime.sleep(600)"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    worker = subprocess.run([sys.executable, "-c", code], env=env, timeout=TIMEOUT_S)
    assert worker.returncode == ORPHAN_EXIT_CODE


def test_procfs_reads_this_process() -> None:
    stat = procfs.read_stat(os.getpid())
    assert stat is not None and stat.parent == os.getppid() and stat.cpu_ticks >= 0
    assert stat.pid in {process.pid for process in procfs.all_processes()}
    assert procfs.read_stat(-1) is None


def test_procfs_peak_memory_holds_a_short_peak() -> None:
    import numpy as np

    before = procfs.peak_rss_bytes(os.getpid())
    block = np.ones(PEAK_PROBE_BYTES, dtype=np.uint8)  # touched, so resident
    del block
    after = procfs.peak_rss_bytes(os.getpid())
    assert before is not None and after is not None and after >= before
    assert after >= PEAK_PROBE_BYTES  # the peak stays after the memory is freed
    assert procfs.peak_rss_bytes(-1) is None
