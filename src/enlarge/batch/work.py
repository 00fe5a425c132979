"""One item's work, the same in every engine: input bytes → decode → enlarge → encode → output bytes.

It runs inside a worker (a pool process or a Ray actor) that builds its `ItemWorker` once, so each worker loads
the model once and runs it on an explicit number of threads: the same count in every engine, so every engine
produces the same bytes. The driver sends the input's bytes (workers need not see the input files) and gets back
the encoded output, or, with `write_by: worker`, the worker writes the file itself through the hidden temp
folder and only the hash comes back.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from enlarge.batch.workspace import sha256_bytes, write_output
from enlarge.deadline import deadline
from enlarge.errors import DeadlineError, EnlargeError
from enlarge.imageio import decode_image_bytes, encode_image_bytes
from enlarge.sizing import Size, SizeRequest
from enlarge.upscaler import Color, Progress, Upscaler, check_encodable

# Tests only: seconds every item waits before its work, so a test can kill a run part-way. Unset in real use.
ITEM_DELAY_ENV = "ENLARGE_BATCH_ITEM_DELAY_S"


@dataclass(frozen=True)
class WorkerConfig:
    """What every item of a job shares; sent to each worker once."""

    model: str | None  # None: the default model, compressed JPEGs to its robust twin
    adaptive: bool
    threads: int
    tile: int | None
    precision: str | None
    request: SizeRequest
    max_pixels: int
    quality: int | None
    background: Color | None
    tmp: Path | None  # the hidden temp folder when workers write outputs themselves, None when the driver does
    item_timeout_s: float | None = None  # run.item_timeout_s: past it an item stops and fails


@dataclass(frozen=True)
class Task:
    """One item: its input's bytes, and the output path (whose extension picks the format)."""

    input: str
    data: bytes
    output: str


@dataclass(frozen=True)
class Outcome:
    """What became of a task: `error` for a problem the user can fix (never retried), else the output's facts."""

    error: str | None = None
    data: bytes | None = None  # the encoded output, when the driver writes it
    sha256: str | None = None
    input_size: Size | None = None
    output_size: Size | None = None
    method: str = ""
    notes: tuple[str, ...] = ()
    routed_fraction: float | None = None  # adaptive: share of the output the big model decoded
    choice: str | None = None  # why this model was chosen (the default model's routing)
    seconds: float = 0.0


class ItemWorker:
    """A loaded model plus the job's settings; `process` does one task."""

    def __init__(self, config: WorkerConfig) -> None:
        self._config = config
        self._upscaler = Upscaler(
            config.model, threads=config.threads, tile=config.tile, precision=config.precision,
            adaptive=config.adaptive,
        )
        self._delay = float(os.environ.get(ITEM_DELAY_ENV) or 0)

    def process(self, task: Task) -> Outcome:
        """Decode, enlarge, encode (and write, with `write_by: worker`); typed errors become `Outcome.error`."""
        start = time.perf_counter()
        progress = self._deadline()
        time.sleep(self._delay)
        config, output = self._config, Path(task.output)
        try:
            decoded = decode_image_bytes(task.data, max_pixels=config.max_pixels, name=task.input)
            plan = config.request.plan((decoded.width, decoded.height))
            check_encodable(decoded, output, config.quality, config.background)
            enlarged, report = self._upscaler.upscale_image_reported(
                decoded, plan, background=config.background, progress=progress
            )
            data = encode_image_bytes(enlarged, output.suffix, quality=config.quality, background=config.background)
            if config.tmp is not None:
                write_output(output, data, config.tmp)
        except EnlargeError as exc:
            return Outcome(error=str(exc))
        return Outcome(
            data=None if config.tmp is not None else data,
            sha256=sha256_bytes(data),
            input_size=plan.input_size,
            output_size=plan.final_size,
            method=report.model,
            notes=tuple(enlarged.notes),
            seconds=time.perf_counter() - start,
            routed_fraction=report.routed,
            choice=report.choice,
        )

    def _deadline(self) -> Progress | None:
        """A progress callback that fails the item once it has run `item_timeout_s` (None: no limit)."""
        limit = self._config.item_timeout_s
        if limit is None:
            return None
        return deadline(limit, lambda: DeadlineError(
            f"stopped after run.item_timeout_s ({limit:g} s); raise the limit or ask for a smaller output"
        ))
