"""What runs inside a worker process: the models, each loaded on first use, and one enlargement per job.

A worker starts with only the default model (with the robust twin it sends compressed JPEGs to), loaded and run once on a tiny image (so a fresh worker, such as
the replacement of one killed for overrunning, answers its first request as fast as any other); any other model
is loaded the first time a job asks for it, so a worker holds only what its requests use.

Decoding, enlarging and encoding all happen here, never in the server's event loop. A job carries its own time
limit: the engine's progress callback checks it between tiles and stops the work early, which keeps the worker
(and its loaded models) alive; the pool kills the process only when a job overruns inside a single step.

An adaptive job runs the same loaded model through a second `Upscaler` built on first use (it shares the module;
building it checks that the model has a little path and a calibration, so a model without them fails the job
with a typed error instead of failing the worker's start).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import numpy as np
import torch

from enlarge.deadline import deadline
from enlarge.errors import OutputError
from enlarge.imageio import DecodedImage, decode_image_bytes, encode_image_bytes
from enlarge.models.registry import LoadedModel
from enlarge.models.specs import DEFAULT_MODEL
from enlarge.serve.errors import TimeLimitError
from enlarge.sizing import Size, SizeRequest
from enlarge.upscaler import Upscaler

FORMATS_WITHOUT_ALPHA = frozenset({"jpeg"})
UPLOAD_NAME = "the uploaded file"  # how decoding errors name the input
WARMUP_SIDE = 16  # pixels of the image a new worker enlarges once, so its first job pays no first-call costs
WARMUP_SCALE = 2

# This process's loaded models by name (the app sends only offered names; None: the default, which routes).
_UPSCALERS: dict[str | None, Upscaler] = {}
_ADAPTIVE: dict[str | None, Upscaler] = {}  # the same models run adaptively, built by the first adaptive job of each


@dataclass(frozen=True)
class Job:
    """One enlargement, as sent to a worker: the upload's bytes and everything needed to enlarge them."""

    data: bytes
    request: SizeRequest
    model: str | None  # None: the default model, compressed JPEGs to its robust twin
    format: str  # png | jpeg | webp
    max_input_pixels: int
    time_limit_s: float
    adaptive: bool = False


@dataclass(frozen=True)
class JobResult:
    """The encoded output and what produced it, for the response headers."""

    data: bytes
    model: str  # the model's name, or `lanczos` / `copy` when nothing was enlarged
    input_size: Size
    output_size: Size
    seconds: float
    routed_fraction: float | None = None  # adaptive: share of the output the big model decoded
    choice: str | None = None  # why this model was chosen (the default model's routing)


def init_worker(models: tuple[str, ...], threads: int) -> None:
    """Run on `threads` threads; of the offered `models`, load and warm the default now (the others on first use).

    Ctrl-C is left to the server, which stops its workers itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    if DEFAULT_MODEL in models:
        _warm(add_model(None))


def add_model(model: str | LoadedModel | None) -> str | None:
    """Load `model` (a registered name, a model already built, or None: the default) into this process; returns
    the name jobs ask for it by."""
    upscaler = Upscaler(model)
    name = None if model is None else upscaler.model.descriptor.name
    _UPSCALERS[name] = upscaler
    _ADAPTIVE.pop(name, None)
    return name


def enlarge_job(job: Job) -> JobResult:
    """Decode, plan, enlarge and encode one upload; typed `EnlargeError`s for everything a client can cause."""
    start = time.perf_counter()
    check_deadline = deadline(job.time_limit_s, lambda: TimeLimitError.after(job.time_limit_s))
    upscaler = _adaptive(job.model) if job.adaptive else _loaded(job.model)
    decoded = decode_image_bytes(job.data, max_pixels=job.max_input_pixels, name=UPLOAD_NAME)
    plan = job.request.plan((decoded.width, decoded.height))
    if decoded.has_alpha and job.format in FORMATS_WITHOUT_ALPHA:
        raise OutputError(f"the image has transparency, which {job.format} cannot store; ask for png or webp")
    enlarged, report = upscaler.upscale_image_reported(decoded, plan, progress=check_deadline)
    data = encode_image_bytes(enlarged, job.format)
    seconds = time.perf_counter() - start
    return JobResult(data, report.model, plan.input_size, plan.final_size, seconds, report.routed, report.choice)


def _loaded(name: str | None) -> Upscaler:
    """The Upscaler of model `name`, loaded by the first job that asks for it."""
    if name not in _UPSCALERS:
        add_model(name)
    return _UPSCALERS[name]


def _adaptive(name: str | None) -> Upscaler:
    """The adaptive Upscaler of model `name`, sharing its loaded module (the default loads its own, with its
    twin); ModelError if it cannot route."""
    if name not in _ADAPTIVE:
        _ADAPTIVE[name] = Upscaler(None if name is None else _loaded(name).model, adaptive=True)
    return _ADAPTIVE[name]


def _warm(name: str | None) -> None:
    """Enlarge a tiny image once, so the kernels' first-call set-up happens before any request waits on it."""
    upscaler = _UPSCALERS[name]
    pixels = np.zeros((WARMUP_SIDE, WARMUP_SIDE, 3), dtype=np.float32)
    plan = SizeRequest(scale=WARMUP_SCALE).plan((WARMUP_SIDE, WARMUP_SIDE))
    upscaler.upscale_image(DecodedImage(pixels), plan)
