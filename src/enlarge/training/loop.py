"""The training loop: L1 loss, Adam, a step-decay or cosine schedule with warm-up, an optional moving average of
the weights (validated and exported), optional bf16 autocast, periodic validation and atomic checkpoints,
stopping cleanly on SIGTERM/SIGINT or after a time limit. Runs on the CPU or a CUDA device; validation always runs
on the CPU, so checkpoints and scores are the same wherever the run trained.

A resumed run continues bit for bit: batches depend only on (seed, step), and the checkpoint holds the exact
model, optimizer and scheduler state. Bit-identity also needs the same thread count (reductions split by thread).
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from enlarge.engine.render import precision_context
from enlarge.errors import ConfigError
from enlarge.fileutil import atomic_write_text
from enlarge.models.registry import LoadedModel, build, describe, load_state_strict, parameter_count
from enlarge.training.checkpoint import (
    BEST,
    LAST,
    LOG,
    Checkpoint,
    fp32_state,
    load_checkpoint,
    save_checkpoint,
    save_record,
    save_state,
)
from enlarge.training.config import TrainConfig, load_config, resolve_threads, training_precision
from enlarge.training.data import Batch, Prefetcher, Sampling, load_training_images
from enlarge.training.validation_set import mean_score, validation_scores, validation_sets
from enlarge.training.warm_start import initial_weights
from enlarge.validation import replace

CPU = torch.device("cpu")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
MEGA = 1e6
PROGRESS_INTERVAL_S = 1.0  # progress bar refresh: readable in a log file, cheap at any step rate
SECONDS_PER_MINUTE = 60
TIME_LIMIT = 0  # StopRequest.signum when the session's time limit, not a signal, stops the run


@dataclass
class TrainResult:
    """Where a run stands when `train` returns."""

    name: str
    run_dir: Path
    step: int
    total: int
    stopped_by: str | None  # the signal's name if stopped early, None if the run reached `total`
    best_psnr: float | None
    best_step: int | None


def train_from_file(
    config_path: Path,
    name: str | None = None,
    resume: bool = False,
    resume_from: Path | None = None,
    steps: int | None = None,
    data_root: Path | None = None,
    device: str = "cpu",
    max_minutes: float | None = None,
    data_workers: int | None = None,
) -> TrainResult:
    """Start, or with `resume` / `resume_from` continue, the run `name` (default: the config file's stem).

    `steps` overrides the config's total, `data_root` where its images are and `data_workers` how many processes
    make its batches. A new run refuses to overwrite a run folder that has a checkpoint.
    `device` is where the steps run (cpu, cuda); `max_minutes` stops the session cleanly, with a checkpoint.
    """
    config = load_config(config_path)
    if max_minutes is not None and not max_minutes > 0:
        raise ConfigError(f"the time limit must be a positive number of minutes, got {max_minutes}")
    if steps is not None:
        config = replace(config, f"{config_path} (steps overridden)", steps=steps)
    if data_root is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, data_root=str(data_root)))
    if data_workers is not None:
        config = replace(config, f"{config_path} (data workers overridden)", data_workers=data_workers)
    if resume and resume_from is not None:
        raise ConfigError("resume either the run or from a checkpoint file, not both", setting="resume_from")
    name = name or Path(config_path).stem
    run_dir = config.run_path(name)
    source = run_dir / LAST if resume else resume_from
    if source is None and (run_dir / LAST).exists():
        raise ConfigError(f"{run_dir} already holds a run; resume it to continue, or give a new run name", setting="resume")
    checkpoint = load_checkpoint(source) if source is not None else None
    return train(config, name, run_dir, checkpoint, device=resolve_training_device(device), max_minutes=max_minutes)


def resolve_training_device(name: str) -> torch.device:
    """The device to train on: `cpu`, or `cuda[:N]` where torch sees that GPU; ConfigError otherwise."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu or cuda") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("training device cuda: torch sees no CUDA GPU on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"training device {name}: there are only {torch.cuda.device_count()} CUDA GPUs")
    elif device.type != "cpu":
        raise ConfigError(f"training runs on cpu or cuda, not {device.type}")
    return device


def train(
    config: TrainConfig,
    name: str,
    run_dir: Path,
    checkpoint: Checkpoint | None = None,
    device: torch.device = CPU,
    max_minutes: float | None = None,
) -> TrainResult:
    """Train `config` in `run_dir` from scratch or from `checkpoint` up to `config.steps` steps."""
    config_hash = config.identity_hash()
    if checkpoint is not None and checkpoint.config_hash != config_hash:
        raise ConfigError(
            f"the checkpoint was made with a different config (hash {checkpoint.config_hash}, now {config_hash}); "
            "only steps, threads, data workers, logging, validation and checkpoint settings may change on resume"
        )
    precision, warning = training_precision(checkpoint.precision if checkpoint is not None else config.precision,
                                           device.type)
    if warning is not None:
        _say(warning)
    threads = resolve_threads(config.threads)
    torch.set_num_threads(threads)
    start = checkpoint.step if checkpoint is not None else 0
    if checkpoint is not None:
        if checkpoint.threads != threads:
            _say(f"warning: the checkpoint ran on {checkpoint.threads} threads, now {threads}: "
                 "the result will not be bit-identical to an uninterrupted run")
        if start >= config.steps:
            _say(f"{name}: already at step {start} of {config.steps}; raise the steps to train further")
            return TrainResult(name, run_dir, start, config.steps, None, checkpoint.best_psnr, checkpoint.best_step)

    torch.manual_seed(config.seed)
    arch, model_config = config.model.resolved()
    module = build(arch, model_config)
    if checkpoint is None and config.init_from is not None:
        load_state_strict(module, initial_weights(config.init_from, module), f"init_from {config.init_from}")
    module.to(device)
    optimizer, scheduler = make_optimizer(module, config)
    ema = WeightAverage(module, config.ema) if config.ema else None
    if checkpoint is not None:
        load_state_strict(module, checkpoint.model, "checkpoint")
        optimizer.load_state_dict(checkpoint.optimizer)
        scheduler.load_state_dict(checkpoint.scheduler)
        if ema is not None:
            ema.load(checkpoint.ema if checkpoint.ema is not None else fp32_state(module))
    evaluated = build(arch, model_config)  # a CPU copy for validation: the average, or the weights as they are

    sampling = Sampling.from_config(config)
    mix = config.degrade.mix() if config.degrade is not None else None
    images, skipped = load_training_images(
        config.data.root, config.data.train_dirs, config.data.val_list, sampling.largest_crop
    )
    val_sets = validation_sets(config)
    val_images = val_sets[""]
    descriptor = describe(name, arch, model_config, evaluated, has_weights=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    workers = f", batches from {config.data_workers} processes" if config.data_workers else ""
    _say(
        f"{name}: {arch} ({parameter_count(module) / MEGA:.3f} M parameters), {len(images)} training images"
        f"{f' ({skipped} too small, skipped)' if skipped else ''}, {len(val_images)} validation images, "
        f"{precision}, {threads} threads on {device}{workers}, step {start} → {config.steps}, run folder {run_dir}"
    )

    best_psnr = checkpoint.best_psnr if checkpoint is not None else None
    best_step = checkpoint.best_step if checkpoint is not None else None
    elapsed_before = checkpoint.elapsed_s if checkpoint is not None else 0.0
    session_start = time.monotonic()

    def snapshot(step: int) -> Checkpoint:
        return Checkpoint(
            step=step, model=fp32_state(module), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
            config=config.to_dict(), config_hash=config_hash, name=name, precision=precision, threads=threads,
            best_psnr=best_psnr, best_step=best_step, elapsed_s=elapsed_before + time.monotonic() - session_start,
            ema=ema.state() if ema is not None else None,
        )

    def validated_state() -> dict[str, torch.Tensor]:
        return ema.state() if ema is not None else fp32_state(module)

    deadline = session_start + max_minutes * SECONDS_PER_MINUTE if max_minutes is not None else math.inf

    log = RunLog(run_dir / LOG, keep_until=start)
    prefetch = Prefetcher(images, sampling, config.batch_size, config.seed, start, config.steps, mix,
                          workers=config.data_workers)
    bar = tqdm(total=config.steps, initial=start, unit="step", desc=name, dynamic_ncols=True, file=sys.stderr,
               mininterval=PROGRESS_INTERVAL_S)
    window_loss, window_steps, window_start = 0.0, 0, time.monotonic()
    step = start
    try:
        with stop_signals() as stop:
            while step < config.steps and stop.signum is None:
                loss = train_step(module, optimizer, next(prefetch).to(device), precision)
                scheduler.step()
                if ema is not None:
                    ema.update(module)
                step += 1
                if time.monotonic() > deadline and stop.signum is None:
                    stop.reason = f"the time limit of {max_minutes:g} minutes"
                    stop.signum = TIME_LIMIT
                window_loss += loss
                window_steps += 1
                bar.update()
                bar.set_postfix(loss=f"{window_loss / window_steps:.4f}", refresh=False)
                if step % config.log_every == 0:
                    now = time.monotonic()
                    log.write(step=step, loss=window_loss / window_steps, lr=scheduler.get_last_lr()[0],
                              steps_per_s=window_steps / (now - window_start))
                    window_loss, window_steps, window_start = 0.0, 0, now
                if val_images and (step % config.val_every == 0 or step == config.steps):
                    state = validated_state()
                    evaluated.load_state_dict(state)
                    scores = validation_scores(LoadedModel(evaluated, descriptor), val_sets)
                    mean = mean_score(scores)
                    improved = best_psnr is None or mean > best_psnr
                    if improved:
                        best_psnr, best_step = mean, step
                        save_state(run_dir / BEST, state)
                    log.write(step=step, val_psnr=mean, val_psnr_by_scale=scores,
                              best=improved)
                    bar.write(f"step {step}: val Y-PSNR {mean:.3f} dB "
                              f"({', '.join(f'{k} {v:.2f}' for k, v in scores.items())}), best {best_psnr:.3f}",
                              file=sys.stderr)
                if stop.signum is not None:
                    bar.write(f"{stop.name}: saving a checkpoint at step {step}", file=sys.stderr)
                if step % config.checkpoint_every == 0 or step == config.steps or stop.signum is not None:
                    latest = snapshot(step)
                    save_checkpoint(run_dir / LAST, latest)
                    save_record(run_dir, latest.record())
    finally:
        prefetch.close()
        bar.close()
        log.close()
    stopped_by = stop.name if stop.signum is not None else None
    return TrainResult(name, run_dir, step, config.steps, stopped_by, best_psnr, best_step)


def make_optimizer(module: nn.Module, config: TrainConfig) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LRScheduler]:
    """Adam at `config.lr` with the config's schedule: the one optimizer convention of training.

    `multistep` multiplies the rate by `gamma` at each milestone; `cosine` follows half a cosine from `lr` to
    `min_lr` over `decay_steps`, then stays at `min_lr`. Both ramp up linearly over `warmup_steps` first.
    """
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
    if config.schedule == "multistep" and not config.warmup_steps:
        return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, config.milestones, config.gamma)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step))


def lr_factor(config: TrainConfig, step: int) -> float:
    """The learning rate after `step` steps, as a fraction of `config.lr`."""
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.schedule == "multistep":
        return warm * config.gamma ** sum(step >= m for m in config.milestones)
    floor = config.min_lr / config.lr
    progress = min(1.0, step / config.decay_steps)
    return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


class WeightAverage:
    """An exponential moving average of a module's parameters (buffers copied as they are), kept in fp32 on the
    module's device: the weights that are validated and exported, smoother than the last step's."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self._average = {k: v.detach().float().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        params = dict(module.named_parameters())
        for key, value in module.state_dict().items():
            if key in params:
                self._average[key].lerp_(value.float(), 1 - self.decay)
            else:
                self._average[key].copy_(value)

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            self._average[key].copy_(value)

    def state(self) -> dict[str, torch.Tensor]:
        """The average as detached fp32 CPU copies."""
        return {k: v.detach().to(CPU, torch.float32).clone() for k, v in self._average.items()}


def train_step(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    precision: str,
    teacher: nn.Module | None = None,
    distill: float = 0.0,
) -> float:
    """One optimisation step on `batch`: L1 loss to the ground truth, plus `distill` × L1 to a frozen `teacher`'s
    output when one is given (compression fine-tuning); losses computed in fp32 whatever the autocast precision."""
    module.train()
    with precision_context(precision, batch.lr.device):
        pred = module(batch.lr, batch.coord, batch.cell)
        if teacher is not None:
            with torch.no_grad():
                target = teacher(batch.lr, batch.coord, batch.cell)
    loss = F.l1_loss(pred.float(), batch.gt)
    if teacher is not None:
        loss = loss + distill * F.l1_loss(pred.float(), target.float())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


class RunLog:
    """`log.jsonl`: one JSON object a line; on (re)start, lines past the resumed step are dropped."""

    def __init__(self, path: Path, keep_until: int) -> None:
        kept = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill
                if isinstance(record, dict) and record.get("step", math.inf) <= keep_until:
                    kept.append(line + "\n")
        atomic_write_text(path, "".join(kept))
        self._file = path.open("a", encoding="utf-8")

    def write(self, **record: Any) -> None:
        self._file.write(json.dumps({**record, "time": time.time()}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class StopRequest:
    """Set by the signal handler (the signal number that asked the run to stop) or by the time limit."""

    signum: int | None = None
    reason: str | None = None

    @property
    def name(self) -> str:
        """What stopped the run: the signal's name, or the reason given."""
        return self.reason or signal.Signals(self.signum).name


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """While active, SIGTERM/SIGINT ask the loop to stop after the current step; a second one aborts at once.

    The handler only records the signal: printing or saving from inside it could re-enter a lock it interrupted.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if request.signum is not None:
            raise KeyboardInterrupt
        request.signum = signum

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _say(message: str) -> None:
    """A status line that does not break the progress bar."""
    tqdm.write(message, file=sys.stderr)
