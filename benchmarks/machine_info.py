"""What machine a benchmark ran on, for the header of every results table."""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


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
