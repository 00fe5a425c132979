"""The Linux process table (/proc), read the one way every part of the tool needs it.

A process's `stat` line is `PID (COMMAND) STATE PPID ...`; the command may hold spaces and parentheses, so the
fields are split after the last `)`. Field positions below count from STATE (0), as proc(5) lists them minus 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
PEAK_RSS_FIELD = "VmHWM:"  # in /proc/PID/status: the kernel's high-water mark of resident memory, in KiB
BYTES_PER_KIB = 1024
STATE, PPID, UTIME, STIME, START_TIME = 0, 1, 11, 12, 19  # positions after the command name
ZOMBIE = "Z"


@dataclass(frozen=True)
class ProcessStat:
    """What /proc/PID/stat says about one process."""

    pid: int
    command: str
    fields: list[str]

    @property
    def state(self) -> str:
        """R running, S sleeping, Z zombie (ended, not yet reaped by its parent), ..."""
        return self.fields[STATE]

    @property
    def parent(self) -> int:
        return int(self.fields[PPID])

    @property
    def start_time(self) -> str:
        """Clock ticks after boot at which it started: with the pid, it names one process for good."""
        return self.fields[START_TIME]

    @property
    def cpu_ticks(self) -> int:
        """User plus system CPU time so far, in clock ticks."""
        return int(self.fields[UTIME]) + int(self.fields[STIME])


def available() -> bool:
    """Whether this system has a /proc process table."""
    return (PROC / "self" / "stat").exists()


def read_stat(pid: int | str) -> ProcessStat | None:
    """The stat of process `pid`, None if it has ended (or there is no /proc)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
        command, rest = text[text.index("(") + 1 :].rsplit(")", 1)
    except (OSError, ValueError):
        return None
    return ProcessStat(int(pid), command, rest.split())


def peak_rss_bytes(pid: int | str) -> int | None:
    """The most resident memory process `pid` has held so far (the kernel keeps the mark, so no sampling can miss
    a short peak); None if it has ended or the system does not say."""
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(PEAK_RSS_FIELD):
            return int(line.split()[1]) * BYTES_PER_KIB
    return None


def all_processes() -> list[ProcessStat]:
    """Every process alive now."""
    found = []
    for entry in PROC.glob("[0-9]*"):
        if (stat := read_stat(entry.name)) is not None:
            found.append(stat)
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` exists and has not ended (a zombie has)."""
    stat = read_stat(pid)
    return stat is not None and stat.state != ZOMBIE


def descendants(root: int) -> dict[int, str]:
    """Every process below `root` (children, their children, ...), with its start time."""
    children: dict[int, list[ProcessStat]] = {}
    for stat in all_processes():
        children.setdefault(stat.parent, []).append(stat)
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for stat in children.get(todo.pop(), []):
            found[stat.pid] = stat.start_time
            todo.append(stat.pid)
    return found
