"""Worker processes for the service: models loaded once per worker, a bounded waiting line, a time limit that kills.

Each worker is its own one-process `ProcessPoolExecutor`, so a job that overruns its limit is stopped by killing
(SIGKILL) that one process; a fresh worker takes its place while the others carry on. Workers end with the server,
even one killed with SIGKILL (lifetime.py). Workers are forked from a
forkserver that has already imported torch and the library, so a replacement is ready in a fraction of a second,
and no worker inherits the server's threads (which `fork` from a running server would). Where there is no
forkserver (Windows) they are spawned, and each imports torch itself.

The event loop never runs a job or waits on one in a blocking call: it submits, awaits the future, and on a
timeout kills and moves on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from typing import Any, TypeVar

from enlarge.lifetime import die_with_parent
from enlarge.serve.errors import QueueFullError, TimeLimitError, WorkerLostError

FORKSERVER = "forkserver"
FALLBACK_START_METHOD = "spawn"
KILL_SIGNAL = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL; its SIGTERM terminates at once
PRELOAD = ["enlarge.serve.worker"]  # imported once by the forkserver, so every worker starts with torch loaded
KILL_GRACE_S = 1.0  # past the limit, how long a job may take to stop itself before its worker is killed
RESTART_BACKOFF_S = 1.0  # wait between attempts to replace a worker that failed to start
MIN_RETRY_AFTER_S = 1
INITIAL_JOB_S = 1.0  # the running mean of job durations before any job has finished
DURATION_WEIGHT = 0.2  # weight of the newest job in that running mean

log = logging.getLogger(__name__)
T = TypeVar("T")


def _start_worker(server: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    """In a new worker: end with the server process `server`, then run the pool's initializer."""
    die_with_parent(watched=server)
    initializer(*initargs)


class _Worker:
    """One worker process, behind its own single-process executor."""

    def __init__(self, executor: ProcessPoolExecutor, pid: int) -> None:
        self.executor = executor
        self.pid = pid

    def kill(self) -> None:
        """Stop the process at once, whatever it is doing."""
        with suppress(ProcessLookupError):
            os.kill(self.pid, KILL_SIGNAL)

    def reap(self) -> None:
        """Let the executor notice its dead process and release its queues; blocking, so run it in a thread."""
        self.executor.shutdown(wait=True, cancel_futures=True)


class WorkerPool:
    """`size` worker processes set up by `initializer(*initargs)`; at most `size + queue` jobs admitted at once."""

    def __init__(self, size: int, queue: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
        self.size = size
        self.queue = queue
        self._initializer = initializer
        self._initargs = initargs
        if FORKSERVER in multiprocessing.get_all_start_methods():
            forkserver = multiprocessing.get_context(FORKSERVER)
            forkserver.set_forkserver_preload(PRELOAD)  # process-wide; takes effect when the forkserver starts
            self._context: multiprocessing.context.BaseContext = forkserver
        else:
            self._context = multiprocessing.get_context(FALLBACK_START_METHOD)
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: set[_Worker] = set()
        self._restarts: set[asyncio.Task[None]] = set()
        self._admitted = 0
        self._busy = 0
        self._mean_job_s = INITIAL_JOB_S
        self._closed = True  # until started

    async def start(self) -> None:
        """Start every worker and wait until each has loaded its models; a failing initializer fails here.

        A closed pool may be started again (an ASGI app can go through its lifespan more than once).
        """
        self._closed = False
        self._idle = asyncio.Queue()
        started = await asyncio.gather(
            *(asyncio.to_thread(self._spawn) for _ in range(self.size)), return_exceptions=True
        )
        for worker in started:
            if isinstance(worker, _Worker):
                self._workers.add(worker)
                self._idle.put_nowait(worker)
        failures = [outcome for outcome in started if isinstance(outcome, BaseException)]
        if failures:
            await self.close()  # the workers that did start
            raise failures[0]

    async def run(self, fn: Callable[..., T], *args: Any, time_limit_s: float) -> T:
        """`fn(*args)` in a worker; QueueFullError when the line is full, TimeLimitError past `time_limit_s`.

        The limit counts from when a worker takes the job, not from when it joined the line.
        """
        if self._closed:
            raise WorkerLostError("the server is not running its workers (starting or stopping); try again")
        if self._admitted >= self.size + self.queue:
            raise QueueFullError(
                "the server is busy: every worker is enlarging and the waiting line is full; try again shortly",
                self.retry_after_s(),
            )
        self._admitted += 1
        try:
            worker = await self._idle.get()
            return await self._run_on(worker, fn, args, time_limit_s)
        finally:
            self._admitted -= 1

    def retry_after_s(self) -> int:
        """Seconds until a place is likely free: the waiting jobs' expected time, shared by the workers."""
        waiting = self._admitted - self._busy
        return max(MIN_RETRY_AFTER_S, math.ceil(self._mean_job_s * (waiting + 1) / self.size))

    def stats(self) -> dict[str, int]:
        """Workers alive, running a job, and jobs waiting for one."""
        return {"workers": len(self._workers), "busy": self._busy, "waiting": self._admitted - self._busy}

    async def close(self) -> None:
        """Stop every worker now, including those mid-job (the server is going away)."""
        self._closed = True
        await asyncio.gather(*self._restarts)  # each ends within one start attempt once closed
        for worker in list(self._workers):
            self._workers.discard(worker)
            worker.kill()
            await asyncio.to_thread(worker.reap)
        self._idle = asyncio.Queue()  # without the dead workers, for a later start

    async def _run_on(self, worker: _Worker, fn: Callable[..., T], args: tuple[Any, ...], limit_s: float) -> T:
        started = time.monotonic()
        self._busy += 1
        try:
            future = worker.executor.submit(fn, *args)
            result = await asyncio.wait_for(asyncio.wrap_future(future), limit_s + KILL_GRACE_S)
        except asyncio.TimeoutError:
            self._replace(worker, kill=True)
            raise TimeLimitError.after(limit_s) from None
        except BrokenProcessPool:  # the process is already gone
            self._replace(worker, kill=False)
            raise WorkerLostError("a worker process stopped during the enlargement; try again") from None
        except asyncio.CancelledError:  # the request went away: its work is stopped with it
            self._replace(worker, kill=True)
            raise
        except Exception:  # the job's own error: the worker is fine
            self._release(worker)
            raise
        finally:
            self._busy -= 1
        elapsed = time.monotonic() - started
        self._mean_job_s += DURATION_WEIGHT * (elapsed - self._mean_job_s)
        self._release(worker)
        return result

    def _release(self, worker: _Worker) -> None:
        """Put a worker back in line for the next job, unless the pool has been closed under it."""
        if worker in self._workers:
            self._idle.put_nowait(worker)

    def _spawn(self) -> _Worker:
        """Start one worker and wait (in a thread) until its initializer has run; blocking."""
        executor = ProcessPoolExecutor(
            max_workers=1, mp_context=self._context, initializer=_start_worker,
            initargs=(os.getpid(), self._initializer, self._initargs),
        )
        try:
            pid = executor.submit(os.getpid).result()
        except BrokenProcessPool:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        return _Worker(executor, pid)

    def _replace(self, worker: _Worker, kill: bool) -> None:
        """Take `worker` out (killing it first if `kill`) and start another in its place, in the background."""
        self._workers.discard(worker)
        if kill:
            worker.kill()
        task = asyncio.create_task(self._restart(worker))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self, dead: _Worker) -> None:
        await asyncio.to_thread(dead.reap)
        while not self._closed:
            try:
                worker = await asyncio.to_thread(self._spawn)
            except (OSError, BrokenProcessPool):
                log.exception("could not start a replacement worker; retrying in %g s", RESTART_BACKOFF_S)
                await asyncio.sleep(RESTART_BACKOFF_S)
                continue
            if self._closed:
                worker.kill()
                await asyncio.to_thread(worker.reap)
            else:
                self._workers.add(worker)
                self._idle.put_nowait(worker)
            return
