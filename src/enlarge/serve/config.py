"""Settings of the service (`enlarge serve` flags), validated once so a bad value fails at start, not per request."""

from __future__ import annotations

import math
from dataclasses import dataclass

from enlarge.errors import ConfigError
from enlarge.sizing import PIXELS_PER_MP
from enlarge.threads import choose_threads, worker_bytes, workers_that_fit

BYTES_PER_MB = 1024 * 1024
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_INPUT_MP = 16.0  # smaller than the CLI's: a server enlarges what strangers send
DEFAULT_MAX_OUTPUT_MP = 16.0  # a 16 MP job peaks near 1 GB of memory in its worker
DEFAULT_QUEUE = 16  # requests that may wait for a worker beyond those running
DEFAULT_TIMEOUT_S = 60.0
AUTO_WORKERS = 0
THREADS_PER_AUTO_WORKER = 1  # a service gains more from jobs in parallel than from threads inside one job


@dataclass(frozen=True)
class ServeConfig:
    """Limits and sizing of one service; every field is an `enlarge serve` flag.

    `workers` 0 (automatic) becomes one per core, as many as the memory holds with a job at the output limit each.
    """

    workers: int = AUTO_WORKERS
    token: str | None = None
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_input_mp: float = DEFAULT_MAX_INPUT_MP
    max_output_mp: float = DEFAULT_MAX_OUTPUT_MP
    queue: int = DEFAULT_QUEUE
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError(f"workers must be 0 (automatic) or more, got {self.workers}", setting="workers")
        if self.queue < 0:
            raise ConfigError(f"the queue must be 0 or more, got {self.queue}", setting="queue")
        if self.token is not None and not self.token.strip():
            raise ConfigError("the token is empty; give a non-empty token or leave it out", setting="token")
        for setting, what, value in (
            ("max_upload_mb", "the upload limit (MB)", self.max_upload_mb),
            ("max_input_mp", "the input limit (MP)", self.max_input_mp),
            ("max_output_mp", "the output limit (MP)", self.max_output_mp),
            ("timeout_s", "the timeout (s)", self.timeout_s),
        ):
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{what} must be a positive number, got {value}", setting=setting)
        if self.workers == AUTO_WORKERS:
            per_worker = worker_bytes(int(self.max_output_mp * PIXELS_PER_MP))
            object.__setattr__(self, "workers", workers_that_fit(THREADS_PER_AUTO_WORKER, per_worker))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * BYTES_PER_MB)

    @property
    def max_input_pixels(self) -> int:
        return int(self.max_input_mp * PIXELS_PER_MP)

    @property
    def threads_per_worker(self) -> int:
        """Torch threads for each worker: the CPUs free now shared out, at least one (threads.py)."""
        return choose_threads(workers=self.workers)
