"""`enlarge serve` as a child process: started on a free port, known to be serving, its log kept, stopped cleanly.

For what drives a real service from outside (tests, benchmarks, scripts). The child is `python -m enlarge serve`
of this interpreter with `--port 0`; uvicorn names the address it bound once the application (and its workers)
has started, and that line is the sign it serves. A thread reads the child's stderr into `log` as it comes, so the
child never blocks on a full pipe and what it printed can be judged afterwards.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from enlarge.serve.errors import ServiceError

SERVING = re.compile(r"Uvicorn running on (http://\S+:\d+)")
START_TIMEOUT_S = 300.0  # a starved 2-core machine takes minutes to import torch in every worker
STOP_GRACE_S = 30.0  # after SIGTERM, before SIGKILL
LOG_TAIL_LINES = 20  # of its stderr, in the error when it does not start


class ServeProcess:
    """A running `enlarge serve FLAGS`: `url` to reach it, `log` of its stderr lines; a context manager that stops it."""

    def __init__(self, flags: Sequence[str] = (), *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 start_timeout_s: float = START_TIMEOUT_S) -> None:
        """Start it and return once it serves; ServiceError (after killing it) if it ends or stays silent."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "enlarge", "serve", "--port", "0", *flags], cwd=cwd, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
        )
        self.log: list[str] = []
        address: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._drain, args=(address,), name="enlarge-serve-log", daemon=True)
        self._reader.start()
        try:
            url = address.get(timeout=start_timeout_s)
        except queue.Empty:
            url = None
        if url is None:
            self.stop(grace_s=0)
            raise ServiceError(f"enlarge serve did not start: {''.join(self.log[-LOG_TAIL_LINES:])}")
        self.url: str = url

    def _drain(self, address: queue.Queue[str | None]) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if found := SERVING.search(line):
                address.put(found.group(1))
        address.put(None)  # it ended

    def stop(self, grace_s: float = STOP_GRACE_S) -> bool:
        """SIGTERM, then SIGKILL after `grace_s`; whether it stopped within the grace. Its whole log is read after."""
        stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                stopped = False
                self.process.kill()
                self.process.wait()
        self._reader.join()
        return stopped

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()
