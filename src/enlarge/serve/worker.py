"""What runs inside a worker process: the models, loaded once per process, and one enlargement per job.

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

from enlarge.engine.render import Progress
from enlarge.errors import OutputError
from enlarge.imageio import decode_image_bytes, encode_image_bytes
from enlarge.models.registry import LoadedModel
from enlarge.serve.errors import TimeLimitError
from enlarge.sizing import Size, SizeRequest
from enlarge.upscaler import Upscaler

FORMATS_WITHOUT_ALPHA = frozenset({"jpeg"})
UPLOAD_NAME = "the uploaded file"  # how decoding errors name the input

_UPSCALERS: dict[str, Upscaler] = {}  # this process's models by name, filled by `init_worker`
_ADAPTIVE: dict[str, Upscaler] = {}  # the same models run adaptively, built by the first adaptive job of each


@dataclass(frozen=True)
class Job:
    """One enlargement, as sent to a worker: the upload's bytes and everything needed to enlarge them."""

    data: bytes
    request: SizeRequest
    model: str
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


def init_worker(models: tuple[str, ...], threads: int) -> None:
    """Load every offered model once; Ctrl-C is left to the server, which stops its workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in models:
        add_model(name, threads)


def add_model(model: str | LoadedModel, threads: int | None = None) -> str:
    """Load `model` (a registered name, or a model already built) into this process; returns its name."""
    upscaler = Upscaler(model, threads=threads)
    name = upscaler.model.descriptor.name
    _UPSCALERS[name] = upscaler
    _ADAPTIVE.pop(name, None)
    return name


def enlarge_job(job: Job) -> JobResult:
    """Decode, plan, enlarge and encode one upload; typed `EnlargeError`s for everything a client can cause."""
    start = time.perf_counter()
    check_deadline = _deadline(job.time_limit_s)
    upscaler = _adaptive(job.model) if job.adaptive else _UPSCALERS[job.model]
    decoded = decode_image_bytes(job.data, max_pixels=job.max_input_pixels, name=UPLOAD_NAME)
    plan = job.request.plan((decoded.width, decoded.height))
    if decoded.has_alpha and job.format in FORMATS_WITHOUT_ALPHA:
        raise OutputError(f"the image has transparency, which {job.format} cannot store; ask for png or webp")
    enlarged, routed = upscaler.upscale_image_routed(decoded, plan, progress=check_deadline)
    data = encode_image_bytes(enlarged, job.format)
    seconds = time.perf_counter() - start
    return JobResult(data, upscaler.method(plan), plan.input_size, plan.final_size, seconds, routed)


def _adaptive(name: str) -> Upscaler:
    """The adaptive Upscaler of loaded model `name`, sharing its module; ModelError if it cannot route."""
    if name not in _ADAPTIVE:
        _ADAPTIVE[name] = Upscaler(_UPSCALERS[name].model, adaptive=True)
    return _ADAPTIVE[name]


def _deadline(limit_s: float) -> Progress:
    """A progress callback that raises `TimeLimitError` at the first tile boundary after `limit_s` seconds."""
    deadline = time.monotonic() + limit_s

    def check(done: int, total: int) -> None:
        if time.monotonic() > deadline:
            raise TimeLimitError.after(limit_s)

    return check
