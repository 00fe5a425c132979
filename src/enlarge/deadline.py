"""Time limits on one enlargement: a progress callback that stops the work at the first tile boundary past it.

The engine calls `progress(done, total)` after each tile; raising there stops the work cleanly, so the process
and its loaded model live on for the next job. A limit is therefore kept to within one tile's time (automatic
tiles are at most 384×384 input pixels); front-ends that must stop a single overlong step kill the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from enlarge.engine.render import Progress
from enlarge.errors import EnlargeError


def deadline(limit_s: float, error: Callable[[], EnlargeError]) -> Progress:
    """A progress callback that raises `error()` at the first tile boundary after `limit_s` seconds from now."""
    ends = time.monotonic() + limit_s

    def check(done: int, total: int) -> None:
        if time.monotonic() > ends:
            raise error()

    return check
