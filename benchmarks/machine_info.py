"""What machine a benchmark ran on, for the header of every results table."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from enlarge import procfs

CPUINFO = Path("/proc/cpuinfo")
BUSY_CPU_SHARE = 0.5  # a process using this many cores' worth of CPU counts as heavy
SAMPLE_S = 1.0  # how long CPU use is sampled to find heavy processes
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, or what the platform module knows elsewhere."""
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_summary() -> str:
    """CPU model and core count: `AMD EPYC, 2 cores`."""
    return f"{cpu_name()}, {os.cpu_count()} cores"


def torch_machine(threads: int) -> str:
    """CPU, torch build and what it runs natively, for the header of a timing table."""
    import torch  # here, so that importing this module never loads torch before a benchmark sets its threads

    from enlarge.engine.precision import bf16_supported

    return (f"{cpu_summary()}, torch {torch.__version__}, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}, native bf16 {'yes' if bf16_supported() else 'no'}, "
            f"{threads} threads")


def python_machine() -> str:
    """CPU and Python version, for the header of a table that times whole processes."""
    return f"{cpu_summary()}, Python {platform.python_version()}"


def heavy_processes() -> list[str]:
    """Other processes (not this one) that used more than BUSY_CPU_SHARE of a core over SAMPLE_S (Linux /proc; else empty)."""
    if not procfs.available():
        return []
    before = {stat.pid: stat.cpu_ticks for stat in procfs.all_processes()}
    time.sleep(SAMPLE_S)
    found = []
    for stat in procfs.all_processes():
        if stat.pid == os.getpid() or stat.pid not in before:
            continue
        share = (stat.cpu_ticks - before[stat.pid]) / CLOCK_TICKS / SAMPLE_S
        if share > BUSY_CPU_SHARE:
            found.append(f"pid {stat.pid} ({stat.command}) at {share:.0%} CPU")
    return found
