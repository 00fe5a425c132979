"""How many threads and worker processes this machine can run well: CPUs actually free, memory, OpenMP waiting.

PyTorch's CPU kernels run on OpenMP threads that spin-wait at every barrier. When another program busies a core,
the thread that shares it runs only in time slices, every barrier waits for it, and an enlargement becomes 5-45x
slower than on one thread (issue 19). Waiting passively fixes that but makes every barrier pay a wake-up, 2-3x
slower on an idle machine. The policy that wins both:

- threads = the CPUs that are free *now* (this process's affinity mask minus what other processes keep busy,
  measured from /proc/stat over a short window), shared out among the workers of a service or batch pool;
- a short spin (GOMP_SPINCOUNT for GNU OpenMP, which PyTorch's Linux wheels use, KMP_BLOCKTIME for Intel's)
  instead of libgomp's default of about 3 ms, so a thread whose partner lost its core soon yields its own.

`prepare()` runs once at process start, before torch is imported (OpenMP reads its environment when it loads),
and starts the CPU sample; `choose_threads()` ends it when the thread count is needed. What the user set
(`--threads`, OMP_NUM_THREADS, OMP_WAIT_POLICY, GOMP_SPINCOUNT, KMP_BLOCKTIME) always wins. Worker processes
inherit the environment. `plan_threads` is the decision itself, a pure function of its inputs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

THREADS_ENV = "OMP_NUM_THREADS"
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
GOMP_SPIN_ENV = "GOMP_SPINCOUNT"
KMP_BLOCKTIME_ENV = "KMP_BLOCKTIME"
# libgomp spins about 100,000 times per millisecond: 10,000 is ~0.1 ms before sleeping (its default is ~3 ms).
SHORT_SPIN = "10000"
SHORT_BLOCKTIME_MS = "0"  # Intel OpenMP: milliseconds a thread spins before sleeping (default 200)
SPIN_SETTINGS = {GOMP_SPIN_ENV: SHORT_SPIN, KMP_BLOCKTIME_ENV: SHORT_BLOCKTIME_MS}
BUSY_CORE = 0.5  # another process counts as holding a core once it keeps it busy more than half the time
MIN_SAMPLE_S = 0.2  # the shortest window over which CPU use is measured (a few scheduler ticks per CPU)
PROC_STAT = Path("/proc/stat")
MEMINFO = Path("/proc/meminfo")
STAT_FIELDS = 8  # user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
IDLE_FIELDS = (3, 4)  # idle and iowait among them
BYTES_PER_KB = 1024
WORKER_BASE_BYTES = 512 * 2**20  # a worker's interpreter, torch and a loaded model
BYTES_PER_OUTPUT_PIXEL = 64  # float32 RGB(A) planes at a few stages of the Upscaler, plus the encoder's copy


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def available_memory() -> int | None:
    """Memory available to new processes in bytes (Linux's MemAvailable), None where unknown."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * BYTES_PER_KB
    except (OSError, ValueError, IndexError):
        return None
    return None


def worker_bytes(peak_output_pixels: int) -> int:
    """Memory one worker needs to enlarge an image into `peak_output_pixels` pixels."""
    return WORKER_BASE_BYTES + BYTES_PER_OUTPUT_PIXEL * peak_output_pixels


def workers_that_fit(threads: int, bytes_per_worker: int, limit: int | None = None, cpus: int | None = None) -> int:
    """Workers of `threads` threads that the CPUs (default: the usable ones) and the memory hold; 1 ≤ it ≤ `limit`."""
    workers = max(1, (cpus if cpus is not None else usable_cpus()) // threads)
    memory = available_memory()
    if memory is not None:
        workers = min(workers, memory // bytes_per_worker)
    if limit is not None:
        workers = min(workers, limit)
    return max(1, workers)


@dataclass(frozen=True)
class ThreadPlan:
    """What the policy decided: threads per worker, the environment to add, and why (for messages and tests)."""

    threads: int
    env: dict[str, str]
    reason: str


def free_of(usable: int, busy_elsewhere: float) -> int:
    """Of `usable` CPUs, those not held by other processes that keep `busy_elsewhere` CPUs busy; at least one."""
    return max(1, usable - int(max(0.0, busy_elsewhere) + BUSY_CORE))


def plan_threads(
    usable: int, busy_elsewhere: float, user_env: Mapping[str, str], requested: int | None = None, workers: int = 1
) -> ThreadPlan:
    """The thread policy: `usable` CPUs of which other processes keep `busy_elsewhere` busy, shared by `workers`.

    `requested` (a `--threads` flag) wins, then OMP_NUM_THREADS as the user set it; otherwise the free CPUs,
    divided among the workers, at least one each. The short spin is added unless the user chose how OpenMP waits.
    """
    chosen_wait = WAIT_POLICY_ENV in user_env
    env = {name: value for name, value in SPIN_SETTINGS.items() if name not in user_env and not chosen_wait}
    if requested is not None:
        return ThreadPlan(requested, env, "requested")
    from_env = _positive_int(user_env.get(THREADS_ENV))
    if from_env is not None:
        return ThreadPlan(from_env, env, f"{THREADS_ENV}={from_env}")
    free = free_of(usable, busy_elsewhere)
    threads = max(1, free // max(1, workers))
    return ThreadPlan(threads, env, f"{free} of {usable} CPUs free, {workers} worker(s)")


@dataclass(frozen=True)
class CpuSample:
    """A point in time: busy CPU-seconds of the CPUs we may use (all processes), and this process's own."""

    wall_s: float
    busy_s: float | None  # None where /proc/stat cannot be read
    own_s: float

    @classmethod
    def now(cls) -> CpuSample:
        return cls(time.monotonic(), _busy_seconds(), time.process_time())

    def busy_elsewhere(self, later: CpuSample) -> float:
        """CPUs that other processes kept busy between this sample and `later` (this process's own use removed)."""
        if self.busy_s is None or later.busy_s is None or later.wall_s <= self.wall_s:
            return _load_average()
        others = (later.busy_s - self.busy_s) - (later.own_s - self.own_s)
        return max(0.0, others / (later.wall_s - self.wall_s))


_started: CpuSample | None = None  # set by prepare(): the start of this process's CPU sample


def prepare(environ: MutableMapping[str, str] = os.environ) -> None:
    """At process start, before torch loads: add the short spin to the environment and start the CPU sample."""
    global _started
    environ.update(plan_threads(usable_cpus(), 0.0, environ).env)
    if _started is None:
        _started = CpuSample.now()


def choose_threads(requested: int | None = None, workers: int = 1, environ: Mapping[str, str] = os.environ) -> int:
    """Threads for each of `workers` workers: what the user asked for, else the CPUs free since `prepare()`."""
    user_count = requested is not None or _positive_int(environ.get(THREADS_ENV)) is not None
    busy = 0.0 if user_count else busy_elsewhere()  # no need to measure when the user's count wins
    return plan_threads(usable_cpus(), busy, environ, requested, workers).threads


def free_cpus() -> int:
    """The CPUs that other processes leave free, measured since `prepare()` (or over MIN_SAMPLE_S from now)."""
    return free_of(usable_cpus(), busy_elsewhere())


def busy_elsewhere() -> float:
    """CPUs kept busy by other processes since `prepare()`, waiting until the window is at least MIN_SAMPLE_S."""
    start = _started or CpuSample.now()
    wait = MIN_SAMPLE_S - (time.monotonic() - start.wall_s)
    if wait > 0:
        time.sleep(wait)
    return start.busy_elsewhere(CpuSample.now())


def _busy_seconds() -> float | None:
    """Busy seconds so far, summed over the CPUs this process may use, from /proc/stat; None where unknown."""
    try:
        lines = PROC_STAT.read_text().splitlines()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    busy = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        if allowed is not None and int(name[len("cpu"):]) not in allowed:
            continue
        values = [int(value) for value in fields[:STAT_FIELDS]]
        busy += sum(values) - sum(values[index] for index in IDLE_FIELDS if index < len(values))
    return busy / ticks


def _load_average() -> float:
    """The one-minute load average, where /proc/stat is missing (slower to follow a change, but everywhere)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None
