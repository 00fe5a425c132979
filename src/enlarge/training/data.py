"""Training data: HR images decoded once into memory, and random LR/HR query samples made from them.

Every random choice of a sample comes from a generator seeded with (seed, step, index in batch), so a batch is a
pure function of the step: a resumed run draws exactly the samples an uninterrupted one would, with no RNG state
to save. Batches are made a few steps ahead while the model trains: on a background thread, or with `workers`
in that many processes (a GPU outruns one CPU core making samples); either way batch k is the same tensors.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import signal
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from pathlib import Path

import numpy as np
import torch

from enlarge.coords import make_coord
from enlarge.degradations import DegradationMix, random_lr
from enlarge.errors import ConfigError
from enlarge.imagefolders import find_images, read_rgb8
from enlarge.lifetime import die_with_parent
from enlarge.resize import imresize
from enlarge.training.config import TrainConfig

LEVELS = 255.0
FLIP_CHANCE = 0.5
PREFETCH = 2  # batches made ahead of the training step (per worker process, when there are some)
MIN_WHOLE_SCALE = 2  # the smallest whole factor `integer_scale` snaps to: ×1 would be no downscaling


@dataclass(frozen=True)
class Sampling:
    """The settings that shape one sample."""

    patch: int
    scale_min: float
    scale_max: float
    sample_q: int

    @classmethod
    def from_config(cls, config: TrainConfig) -> Sampling:
        return cls(config.patch, config.scale_min, config.scale_max, config.sample_q)

    @property
    def largest_crop(self) -> int:
        """HR crop side at the top scale: every training image must be at least this big."""
        return round(self.patch * self.scale_max)


@dataclass
class Batch:
    """One training batch: LR inputs B×3×p×p, query coordinates and cells B×Q×2, target RGB B×Q×3."""

    lr: torch.Tensor
    coord: torch.Tensor
    cell: torch.Tensor
    gt: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        """The batch on `device` (itself when already there)."""
        if self.lr.device == device:
            return self
        return Batch(*(t.to(device, non_blocking=True) for t in (self.lr, self.coord, self.cell, self.gt)))


def load_training_images(
    root: Path, train_dirs: Sequence[str], exclude: Sequence[str], min_size: int
) -> tuple[list[np.ndarray], int]:
    """Decode every image of `train_dirs` under `root`, except the `exclude` paths (relative to `root`).

    Images smaller than `min_size` on either side cannot give a full crop and are skipped; returns the images and
    how many were skipped.
    """
    held_out = {(root / item).resolve() for item in exclude}
    images: list[np.ndarray] = []
    skipped = 0
    for name in train_dirs:
        folder = root / name
        if not folder.is_dir():
            raise ConfigError(f"training folder {folder} not found (relative paths start at the current folder)")
        for path in find_images(folder):
            if path.resolve() in held_out:
                continue
            image = read_rgb8(path)
            if min(image.shape[:2]) < min_size:
                skipped += 1
                continue
            images.append(image)
    if not images:
        raise ConfigError(f"no usable training images (at least {min_size}×{min_size}) in {', '.join(train_dirs)}")
    return images, skipped


def sample_rng(seed: int, step: int, index: int) -> np.random.Generator:
    """The generator of sample `index` of the batch for `step` (0-based)."""
    return np.random.default_rng(np.random.SeedSequence([seed, step, index]))


def make_sample(
    images: Sequence[np.ndarray], sampling: Sampling, rng: np.random.Generator, mix: DegradationMix | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One sample: a random HR crop of round(patch·s)² at s ~ U(scale_min, scale_max), flipped/transposed at
    random, its MATLAB-bicubic LR (patch², 8-bit levels like benchmark LR images) or, with a degradation `mix`, an
    LR made as real photos are, and `sample_q` random HR pixels as queries.
    Returns (lr 3×p×p, coord Q×2, cell Q×2, gt Q×3)."""
    image = images[rng.integers(len(images))]
    scale = rng.uniform(sampling.scale_min, sampling.scale_max)
    if mix is not None and mix.integer_scale and rng.random() < mix.integer_scale:
        scale = whole_scale(scale, sampling)
    size = round(sampling.patch * scale)
    top = rng.integers(image.shape[0] - size + 1)
    left = rng.integers(image.shape[1] - size + 1)
    crop = image[top : top + size, left : left + size]
    hflip, vflip, transpose = rng.random(3) < FLIP_CHANCE
    if hflip:
        crop = crop[:, ::-1]
    if vflip:
        crop = crop[::-1]
    if transpose:
        crop = crop.transpose(1, 0, 2)
    hr = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / LEVELS
    if mix is None:
        lr = imresize(hr, output_size=(sampling.patch, sampling.patch), quantize=True).clamp(0, 1)
    else:
        lr = random_lr(hr, (sampling.patch, sampling.patch), mix, rng)
    index = torch.from_numpy(rng.choice(size * size, sampling.sample_q, replace=False))
    coord = make_coord((size, size))[index]
    cell = torch.tensor([2.0 / size, 2.0 / size]).expand(sampling.sample_q, 2).clone()
    gt = hr.reshape(3, -1).t()[index]
    return lr, coord, cell, gt


def whole_scale(scale: float, sampling: Sampling) -> float:
    """`scale` rounded to a whole factor within the sampling range, at least MIN_WHOLE_SCALE (×1 is no
    downscaling); `scale` itself where the range holds no such factor."""
    low = max(MIN_WHOLE_SCALE, math.ceil(sampling.scale_min))
    high = math.floor(sampling.scale_max)
    return float(min(max(round(scale), low), high)) if low <= high else scale


def make_batch(
    images: Sequence[np.ndarray], sampling: Sampling, batch_size: int, seed: int, step: int,
    mix: DegradationMix | None = None,
) -> Batch:
    """The batch for `step`: sample i drawn from `sample_rng(seed, step, i)`."""
    parts = [make_sample(images, sampling, sample_rng(seed, step, i), mix) for i in range(batch_size)]
    lr, coord, cell, gt = (torch.stack(group) for group in zip(*parts))
    return Batch(lr=lr, coord=coord, cell=cell, gt=gt)


class Prefetcher:
    """Makes the batches of steps `start`…`stop-1` in order, `PREFETCH` ahead: on one background thread, or with
    `workers` > 0 in that many processes, each holding a copy of the images (spawned, not forked: the training
    process has OpenMP threads, which a forked child cannot use)."""

    def __init__(
        self, images: Sequence[np.ndarray], sampling: Sampling, batch_size: int, seed: int, start: int, stop: int,
        mix: DegradationMix | None = None, workers: int = 0,
    ) -> None:
        self._args = (images, sampling, batch_size, seed)
        self._mix = mix
        self._steps = iter(range(start, stop))
        if workers:
            self._pool = multiprocessing.get_context("spawn").Pool(
                workers, initializer=_worker_start, initargs=(os.getpid(), images, sampling, batch_size, seed, mix)
            )
            self._pending: deque[AsyncResult[Batch]] = deque()
            for _ in range(workers * PREFETCH):
                self._submit()
            return
        self._pool = None
        self._queue: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=PREFETCH)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._work, name="enlarge-data", daemon=True)
        self._thread.start()

    def _submit(self) -> None:
        """Hand the next step to the pool, if there is one left."""
        step = next(self._steps, None)
        if step is not None:
            self._pending.append(self._pool.apply_async(_worker_batch, (step,)))

    def _work(self) -> None:
        try:
            for step in self._steps:
                if not self._put(make_batch(*self._args, step, self._mix)):
                    return
        except BaseException as exc:  # handed to the training thread, which re-raises it
            self._put(exc)

    def _put(self, item: Batch | BaseException) -> bool:
        """Queue `item`, waiting for room; False once the prefetcher is closed."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        if self._pool is not None:
            if not self._pending:
                raise StopIteration
            batch = self._pending.popleft().get()  # a worker's exception is raised here
            self._submit()
            return batch
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the workers (the thread may be blocked waiting for room) and wait for them."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            return
        self._closed.set()
        self._thread.join()


_WORKER: dict[str, object] = {}  # in a worker process: what `_worker_start` was given


def _worker_start(trainer: int, images: Sequence[np.ndarray], sampling: Sampling, batch_size: int, seed: int,
                  mix: DegradationMix | None) -> None:
    """Set up a worker process of `Prefetcher`: one thread (the workers are the parallelism), the samples' inputs.
    Ctrl-C reaches the whole process group; the training process handles it (a checkpoint), the workers ignore it.
    A worker ends with the training process `trainer`, even when that one is killed outright."""
    die_with_parent(trainer)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    _WORKER.update(args=(images, sampling, batch_size, seed), mix=mix)


def _worker_batch(step: int) -> Batch:
    """The batch of `step`, made in a worker process."""
    return make_batch(*_WORKER["args"], step, _WORKER["mix"])
