"""Worker processes that die with their parent, so a killed `enlarge batch` or `enlarge serve` leaves nothing behind.

A pool worker outlives a parent killed with SIGKILL (which runs no clean-up): it waits on its task queue forever,
holding its memory and the multiprocessing resource tracker's pipe (so the tracker lives on too). Two guards:

- on Linux, the kernel sends the worker SIGKILL when its parent goes (`prctl(PR_SET_PDEATHSIG)`);
- everywhere, a daemon thread checks once a second that the parent is still the one the worker started under
  (an orphan is re-parented to init or a subreaper) and ends the process if not. A service's workers are children
  of a forkserver, which outlives a killed server, so they watch the server's pid as well.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_INTERVAL_S = 1.0
ORPHAN_EXIT_CODE = 1

_bound = False


def die_with_parent(watched: int | None = None) -> None:
    """End this process when its parent ends, or process `watched` (a forkserver's child watches the server).

    Call it first thing in a worker; idempotent.
    """
    global _bound
    if _bound:
        return
    _bound = True
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
