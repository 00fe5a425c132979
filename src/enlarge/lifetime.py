"""Worker processes that die with their parent, so a killed `enlarge batch` or `enlarge serve` leaves nothing behind.

A pool worker outlives a parent killed with SIGKILL (which runs no clean-up): it waits on its task queue forever,
holding its memory and the multiprocessing resource tracker's pipe (so the tracker lives on too). Two guards:

- on Linux, the kernel sends the worker SIGKILL when its parent goes (`prctl(PR_SET_PDEATHSIG)`);
- everywhere, a daemon thread checks once a second that the parent is still the one the worker started under
  (an orphan is re-parented to init or a subreaper) and ends the process if not. A service's workers are children
  of a forkserver, which outlives a killed server, so they watch the server's pid as well.

Helpers started by a library rather than by this package cannot be bound that way: a local Ray's dashboard and
runtime-env agents outlive a killed `enlarge batch --engine ray` by about a minute (they notice that the raylet is
gone, then wait on the dead GCS). For those, `reap_when_gone` starts a small guard process (this module, run with
`python -m`) that notes the driver's descendants every second and, once the driver is gone, kills those still alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from enlarge import procfs

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_INTERVAL_S = 1.0
ORPHAN_EXIT_CODE = 1

_bound = False
_reaper: subprocess.Popen[bytes] | None = None


def die_with_parent(parent: int | None = None, watched: int | None = None) -> None:
    """End this process when its parent ends, or process `watched` (a forkserver's child watches the server).

    `parent` is the pid the parent gave its worker (`os.getpid()` in the initializer's arguments): a worker that
    starts slowly (a spawn importing torch on a busy machine) may already be an orphan when it first looks, and would
    otherwise take init for its parent and never end. Call it first thing in a worker; idempotent.
    """
    global _bound
    if _bound:
        return
    _bound = True
    if parent is None:
        parent = os.getppid()
    if sys.platform.startswith("linux"):
        _kernel_guard()
    if not _alive(parent, watched):  # it went before the guard was in place
        os._exit(ORPHAN_EXIT_CODE)
    threading.Thread(target=_watch, args=(parent, watched), name="enlarge-parent-watch", daemon=True).start()


def _kernel_guard() -> None:
    """Ask Linux to SIGKILL this process when the thread that started it exits (best effort)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watch thread still guards


def _alive(parent: int, watched: int | None) -> bool:
    if os.getppid() != parent:  # re-parented: the parent is gone
        return False
    if watched is None:
        return True
    try:
        os.kill(watched, 0)  # signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user (its pid was reused)
    return True


def _watch(parent: int, watched: int | None) -> None:
    while True:
        time.sleep(WATCH_INTERVAL_S)
        if not _alive(parent, watched):
            os._exit(ORPHAN_EXIT_CODE)


def reap_when_gone() -> None:
    """Start the guard that kills this process's descendants once this process is gone, even by SIGKILL.

    Call it before starting helpers that do not die with their parent. Idempotent; needs /proc (Linux), and does
    nothing without it.
    """
    global _reaper
    if _reaper is not None or not procfs.available():
        return
    package_root = str(Path(__file__).resolve().parents[1])  # the guard runs this very copy of the package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    _reaper = subprocess.Popen(
        [sys.executable, "-m", __name__, str(os.getpid())], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _reap(parent: int) -> None:
    """The guard: note `parent`'s descendants every WATCH_INTERVAL_S; once it is gone, SIGKILL those still alive.

    Each is known by its pid and start time, so a pid reused by an unrelated process is left alone.
    """
    known: dict[int, str] = {}
    while os.getppid() == parent:
        known = {pid: start for pid, start in known.items() if _start_time(pid) == start}  # drop those that ended
        known.update(procfs.descendants(parent))
        known.pop(os.getpid(), None)
        time.sleep(WATCH_INTERVAL_S)
    for pid, start in known.items():
        if _start_time(pid) == start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _start_time(pid: int) -> str | None:
    stat = procfs.read_stat(pid)
    return None if stat is None else stat.start_time


if __name__ == "__main__":  # the guard started by reap_when_gone
    _reap(int(sys.argv[1]))
