"""The Ray engine: a pool of actors across a Ray cluster (or a local Ray), each loading the model once.

Each actor reserves `threads` CPUs and runs one task at a time; the driver keeps at most IN_FLIGHT_PER_WORKER
tasks per actor in flight (back-pressure: input bytes are read only as room frees up) and sends each to the
least busy actor. Results come back to the driver, which alone writes the manifest. An actor that dies is
replaced and its tasks come back as failures for the runner to retry. The number of actors is `workers`, or the
cluster's CPUs divided by `threads` for 0, never more than the cluster can hold at once (an actor that cannot be
placed would hold its tasks forever) nor than there are items.

Ray's usage statistics are switched off before Ray is imported. Without an address and outside a running Ray
session, `ray.init` starts a local Ray on this machine, whose processes die with the driver even when it is killed
with SIGKILL (lifetime.reap_when_gone); `--address auto` joins the cluster this node belongs to.
"""

from __future__ import annotations

import logging
import os
from typing import Any

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before ray is imported: it reads the setting at import and init

import ray
from ray.exceptions import RayActorError, RayError

from enlarge.batch.work import ItemWorker, Outcome, Task, WorkerConfig
from enlarge.errors import ConfigError
from enlarge.lifetime import reap_when_gone

IN_FLIGHT_PER_WORKER = 2  # one running, one queued on the actor: no actor waits on the driver
RAY_LOG_LEVEL = logging.WARNING


class _Worker:
    """The actor: an ItemWorker built once in the actor's process."""

    def __init__(self, config: WorkerConfig) -> None:
        self._worker = ItemWorker(config)

    def process(self, task: Task) -> Outcome:
        return self._worker.process(task)


class RayEngine:
    """Runs tasks on Ray actors, at most `workers × IN_FLIGHT_PER_WORKER` at a time."""

    def __init__(self, config: WorkerConfig, workers: int, threads: int, address: str | None, items: int) -> None:
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            if address is None:  # a local Ray: its processes must not outlive a driver killed with SIGKILL
                reap_when_gone()
            try:
                ray.init(address=address, include_dashboard=False, logging_level=RAY_LOG_LEVEL)
            except ConnectionError as exc:
                raise ConfigError(f"cannot reach Ray at {address}: {' '.join(str(exc).split())}") from None
        capacity = max(1, int(ray.cluster_resources().get("CPU", 0)) // threads)
        self.workers = max(1, min(workers or capacity, capacity, items))
        self._config = config
        self._actor_class = ray.remote(num_cpus=threads)(_Worker)
        self._actors = [self._new_actor() for _ in range(self.workers)]
        self._load = [0] * self.workers
        self._in_flight: dict[ray.ObjectRef, tuple[Any, int, Any]] = {}

    def has_room(self) -> bool:
        return len(self._in_flight) < self.workers * IN_FLIGHT_PER_WORKER

    def busy(self) -> bool:
        return bool(self._in_flight)

    def submit(self, task: Task, token: Any) -> None:
        """Send `task` to the least busy actor; `token` comes back with its outcome."""
        slot = self._load.index(min(self._load))
        actor = self._actors[slot]
        self._in_flight[actor.process.remote(task)] = (token, slot, actor)
        self._load[slot] += 1

    def next_done(self) -> tuple[Any, Outcome | BaseException]:
        """Wait for any task to end: (its token, its outcome or the Ray error that stopped it)."""
        ready, _ = ray.wait(list(self._in_flight), num_returns=1)
        token, slot, actor = self._in_flight.pop(ready[0])
        self._load[slot] -= 1
        try:
            return token, ray.get(ready[0])
        except RayActorError as exc:
            if self._actors[slot] is actor:
                self._actors[slot] = self._new_actor()
            return token, exc
        except RayError as exc:
            return token, exc

    def close(self) -> None:
        for actor in self._actors:
            ray.kill(actor)
        if self._owns_ray:
            ray.shutdown()

    def _new_actor(self) -> Any:
        return self._actor_class.remote(self._config)
