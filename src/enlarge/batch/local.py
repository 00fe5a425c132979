"""The local engine: a pool of worker processes on this machine, each loading the model once (pool initializer).

`workers: 0` sizes the pool to the CPUs other programs leave free (at `threads` each) and to the memory available
for the job's largest output (threads.py), never above the number of items. Workers are spawned, not forked: a
fork of a process whose torch threads are running can hang; they die with the driver, even one killed with
SIGKILL (lifetime.py). A worker that dies breaks a ProcessPoolExecutor for good, so the engine starts a new pool
and hands the items that were in flight back as failures, for the runner to retry.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from enlarge.batch.work import ItemWorker, Outcome, Task, WorkerConfig
from enlarge.lifetime import die_with_parent
from enlarge.threads import free_cpus, worker_bytes, workers_that_fit

IN_FLIGHT_PER_WORKER = 2  # one running, one waiting: no worker idles on the driver, and memory stays bounded
START_METHOD = "spawn"

_worker: ItemWorker | None = None  # this worker process's model, made by the pool initializer


def _start_worker(driver: int, config: WorkerConfig) -> None:
    global _worker
    die_with_parent(driver)
    _worker = ItemWorker(config)


def _process(task: Task) -> Outcome:
    if _worker is None:
        raise RuntimeError("batch worker used before its initializer ran")
    return _worker.process(task)


def auto_workers(threads: int, items: int, peak_output_pixels: int) -> int:
    """How many workers of `threads` threads the free CPUs and the memory hold, for outputs of up to that size."""
    return workers_that_fit(threads, worker_bytes(peak_output_pixels), limit=items, cpus=free_cpus())


class LocalEngine:
    """Runs tasks on a process pool, at most `workers × IN_FLIGHT_PER_WORKER` at a time."""

    def __init__(self, config: WorkerConfig, workers: int) -> None:
        self.workers = workers
        self._config = config
        self._pool = self._new_pool()
        self._futures: dict[Future[Outcome], tuple[Any, ProcessPoolExecutor]] = {}

    def has_room(self) -> bool:
        return len(self._futures) < self.workers * IN_FLIGHT_PER_WORKER

    def busy(self) -> bool:
        return bool(self._futures)

    def submit(self, task: Task, token: Any) -> None:
        """Queue `task`; `token` comes back with its outcome."""
        try:
            future = self._pool.submit(_process, task)
        except BrokenProcessPool:
            self._restart()
            future = self._pool.submit(_process, task)
        self._futures[future] = (token, self._pool)

    def next_done(self) -> tuple[Any, Outcome | BaseException]:
        """Wait for any task to end: (its token, its outcome or the exception that stopped it)."""
        done, _ = wait(self._futures, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        token, pool = self._futures.pop(future)
        error = future.exception()
        if error is None:
            return token, future.result()
        if isinstance(error, BrokenProcessPool) and pool is self._pool:
            self._restart()
        return token, error

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context(START_METHOD),
            initializer=_start_worker,
            initargs=(os.getpid(), self._config),
        )

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
