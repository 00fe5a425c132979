"""`enlarge compress`: EASIER depth reduction — linearize the lowest-entropy ReLU, fine-tune, measure, repeat.

Each round makes one move on the accepted model:
- linearize: the active ReLU with the lowest entropy (`entropy.py`) on fixed training batches becomes identity;
- drop: right after a residual block's ReLU went linear, the whole (now linear) block is removed.
The candidate is fine-tuned for `finetune_steps` with the training sampler and optimizer (`training.loop`): L1 to the
ground truth plus `distill` × L1 to the uncompressed model's output, Adam at a constant rate. It is validated on the
training config's validation list before the fine-tune, every `val_every` steps and at the end; its best weights are
the round's result, accepted if their Y-PSNR is within `max_psnr_drop` of the uncompressed model's. A rejected drop
leaves the block linear and the search goes on; a rejected linearization ends it. The accepted model then gets the
exact merges of `merge.py` and is written with its card (`finalize.py`).

Resumable like training: `state.pt` in the run folder commits every round, `round.pt` checkpoints inside one, and
batches depend only on (seed, step). `max_psnr_drop` and `remove` may change on resume (a raised `remove` carries
on; a rejected linearization stays final, its weights are not kept); the rest may not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from enlarge.compress.entropy import entropy_on_batches, entropy_table, lowest
from enlarge.compress.surgery import Network, block_site, drop_block
from enlarge.errors import ConfigError, ModelError
from enlarge.models import LoadedModel, load_model
from enlarge.models.registry import describe
from enlarge.training.checkpoint import LOG, fp32_state, load_state, save_state
from enlarge.training.config import RUNS_DIR, TrainConfig, load_config, resolve_threads, training_precision
from enlarge.training.data import Prefetcher, Sampling, load_training_images, make_batch
from enlarge.training.loop import PROGRESS_INTERVAL_S, RunLog, StopRequest, make_optimizer, stop_signals, train_step
from enlarge.training.validation_set import ValImage, load_val_images, mean_score, validate

DEFAULT_FINETUNE_STEPS = 2000
DEFAULT_DISTILL = 1.0
DEFAULT_CALIBRATION_BATCHES = 8
DEFAULT_MAX_PSNR_DROP = 0.05
NAME_SUFFIX = "-easier"
STATE = "state.pt"
ROUND = "round.pt"
STATE_FORMAT = 1
LINEARIZE, DROP = "linearize", "drop"


@dataclass(frozen=True)
class CompressSettings:
    """How to compress. The first five shape the weights (fixed on resume); the last two only say when to stop.

    `layers`: only activations whose module name starts with one of these prefixes are candidates (empty: all),
    e.g. `("head",)` for the decoder of `lite`, whose per-output-pixel cost dominates at large scales.
    """

    finetune_steps: int = DEFAULT_FINETUNE_STEPS
    lr: float | None = None  # None: the training config's final learning rate
    distill: float = DEFAULT_DISTILL
    calibration_batches: int = DEFAULT_CALIBRATION_BATCHES
    layers: tuple[str, ...] = ()
    max_psnr_drop: float = DEFAULT_MAX_PSNR_DROP
    remove: int | None = None

    def __post_init__(self) -> None:
        for setting, count in (("finetune_steps", self.finetune_steps), ("calibration_batches", self.calibration_batches)):
            if count < 1:
                raise ConfigError(f"{setting.replace('_', ' ')} must be at least 1, got {count}", setting=setting)
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"the learning rate must be positive, got {self.lr}", setting="lr")
        for setting, value in (("distill", self.distill), ("max_psnr_drop", self.max_psnr_drop)):
            if not value >= 0:
                raise ConfigError(f"{setting.replace('_', ' ')} must be zero or positive, got {value}", setting=setting)
        if self.remove is not None and self.remove < 0:
            raise ConfigError(f"the number to remove must be zero or positive, got {self.remove}", setting="remove")


@dataclass
class CompressResult:
    """Where a compression run stands when `Compressor.run` returns."""

    run_dir: Path
    stopped_by: str | None  # the signal's name if stopped early; None once the search has ended
    state: dict[str, Any]


def final_lr(config: TrainConfig) -> float:
    """The learning rate a training run ends at: lr × gamma per milestone."""
    return config.lr * config.gamma ** len(config.milestones)


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """A short hash of a state dict's names, shapes and values."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to(torch.float32).contiguous()
        digest.update(f"{key}{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def start(
    teacher_source: str, config_path: Path, settings: CompressSettings, name: str | None = None,
    run_dir: Path | None = None, resume: bool = False,
) -> Compressor:
    """Load the model and the training config, and open (or, with `resume`, reopen) the run folder."""
    teacher = load_model(teacher_source)
    if not teacher.descriptor.has_weights:
        raise ModelError(f"{teacher_source} has no trained weights; there is nothing to compress")
    config = load_config(config_path)
    if not config.data.val_list:
        raise ConfigError(f"{config_path}: compression measures on data.val_list, which is empty")
    name = name or f"{teacher.descriptor.name}{NAME_SUFFIX}"
    if name == teacher.descriptor.name:
        raise ConfigError(f"the compressed model needs a name other than {name!r}, the model it comes from")
    run_dir = Path(run_dir) if run_dir is not None else RUNS_DIR / name
    state = None
    if resume:
        if not (run_dir / STATE).exists():
            raise ConfigError(f"{run_dir} holds no compression run to resume ({STATE} missing)")
        state = load_state(run_dir / STATE)
        if state.get("format") != STATE_FORMAT:
            raise ConfigError(f"{run_dir / STATE} is not an enlarge compression state")
    elif (run_dir / STATE).exists():
        raise ConfigError(
            f"{run_dir} already holds a compression run; resume it to continue, or give a new run name", setting="resume"
        )
    return Compressor(teacher_source, teacher, config, settings, name, run_dir, state)


class Compressor:
    """One compression run: the uncompressed model, the data, and the run state."""

    def __init__(
        self, teacher_source: str, teacher: LoadedModel, config: TrainConfig, settings: CompressSettings, name: str,
        run_dir: Path, state: dict[str, Any] | None,
    ) -> None:
        self.teacher_source, self.teacher, self.config, self.settings = teacher_source, teacher, config, settings
        self.name, self.run_dir = name, run_dir
        self.teacher.module.eval().requires_grad_(False)
        self.lr = settings.lr if settings.lr is not None else final_lr(config)
        self.finetune = dataclasses.replace(config, lr=self.lr, milestones=[], steps=settings.finetune_steps)
        self.identity = {
            "teacher": fingerprint(teacher.module.state_dict()),
            "config": config.identity_hash(),
            "val": [config.val_crop, config.val_scales],
            "finetune_steps": settings.finetune_steps, "lr": self.lr, "distill": settings.distill,
            "calibration_batches": settings.calibration_batches, "layers": list(settings.layers),
        }
        if state is not None and state["identity"] != self.identity:
            changed = sorted(k for k in self.identity if state["identity"].get(k) != self.identity[k])
            raise ConfigError(f"the run was started with other settings ({', '.join(changed)} differ); only "
                              "the allowed PSNR drop, the number to remove and the config's runtime fields may change on resume")
        self.precision, warning = training_precision(state["precision"] if state is not None else config.precision)
        if warning is not None:
            say(warning)
        torch.set_num_threads(resolve_threads(config.threads))
        self.sampling = Sampling.from_config(config)
        self.images, _ = load_training_images(
            config.data.root, config.data.train_dirs, config.data.val_list, self.sampling.largest_crop
        )
        self.val_images: list[ValImage] = load_val_images(config)
        self.calibration = [
            make_batch(self.images, self.sampling, config.batch_size, config.seed, i)
            for i in range(settings.calibration_batches)
        ]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state: dict[str, Any] = state if state is not None else self._initial_state()

    def run(self) -> CompressResult:
        """Rounds until a stop condition, then nothing more: `finalize` writes the model."""
        log = RunLog(self.run_dir / LOG, keep_until=self._logged_until())
        try:
            with stop_signals() as stop:
                while stop.signum is None and self.state["final"] is None:
                    pending = self.state["pending"] or self._next_move(log)
                    if pending is None:
                        break
                    outcome = self._round(pending, stop, log)
                    if outcome is not None:
                        self._conclude(pending, outcome, log)
        finally:
            log.close()
        stopped_by = signal.Signals(stop.signum).name if stop.signum is not None else None
        return CompressResult(self.run_dir, stopped_by, self.state)

    def stop_reason(self) -> str:
        """Why the search ended (once `run` returned without a signal)."""
        if self.state["final"] is not None:
            return self.state["final"]
        removed = self.state["removed"]
        if self.settings.remove is not None and removed >= self.settings.remove:
            return f"{removed} activations removed (as many as asked: {self.settings.remove})"
        return f"{removed} activations removed, none left to remove"

    def accepted(self) -> Network:
        """The best model the search has accepted so far (the uncompressed one before any round)."""
        return _network(self.state["accepted"]["network"])

    def _logged_until(self) -> int:
        """The last step the run's files account for: the state's, or the round checkpoint's if one is ahead."""
        pending, checkpoint = self.state["pending"], self.run_dir / ROUND
        if pending is not None and checkpoint.exists():
            saved = load_state(checkpoint)
            if saved["round"] == pending["round"]:
                return pending["first_step"] + saved["step"]
        return self.state["next_step"]

    def _initial_state(self) -> dict[str, Any]:
        scores = validate(self.teacher, self.val_images)
        baseline = mean_score(scores)
        say(f"{self.teacher.descriptor.name}: val Y-PSNR {baseline:.3f} dB before compression ({_by_scale(scores)})")
        state: dict[str, Any] = {
            "format": STATE_FORMAT, "identity": self.identity, "precision": self.precision,
            "teacher": {"source": self.teacher_source, "name": self.teacher.descriptor.name},
            "baseline": {"psnr": baseline, "by_scale": scale_keys(scores)},
            "accepted": {"network": _record(Network.of(self.teacher)), "psnr": baseline,
                         "by_scale": scale_keys(scores)},
            "removed": 0, "rounds": [], "pending": None, "next_step": 0, "final": None, "elapsed_s": 0.0,
        }
        save_state(self.run_dir / STATE, state)
        return state

    def _next_move(self, log: RunLog) -> dict[str, Any] | None:
        """Measure the accepted model's entropies and commit the linearization of the lowest one, if allowed."""
        if self.settings.remove is not None and self.state["removed"] >= self.settings.remove:
            return None
        started = time.monotonic()
        accepted = self.accepted()
        entropies = entropy_on_batches(accepted.build(), self.calibration)
        candidates = [e for e in entropies if not self.settings.layers or e.name.startswith(self.settings.layers)]
        if not candidates:
            return None
        target = lowest(candidates)
        index = len(self.state["rounds"])
        say(f"round {index}: entropies of the active ReLUs on {len(self.calibration)} training batches\n"
             f"{entropy_table(entropies)}\nround {index}: linearize {target.name} (entropy {target.entropy:.4f})")
        pending = {
            "round": index, "kind": LINEARIZE, "target": target.name, "entropy": target.entropy,
            "entropies": [asdict(e) for e in entropies], "network": _record(accepted.with_linear(target.name)),
            "first_step": self.state["next_step"],
        }
        self.state["pending"] = pending
        self.state["elapsed_s"] += time.monotonic() - started
        save_state(self.run_dir / STATE, self.state)
        log.write(step=pending["first_step"], round=index, entropies=pending["entropies"])
        return pending

    def _round(self, pending: dict[str, Any], stop: StopRequest, log: RunLog) -> dict[str, Any] | None:
        """Fine-tune the pending candidate; its best validated weights, or None if a signal cut the round short."""
        candidate = _network(pending["network"])
        student = candidate.build()
        model = LoadedModel(student, describe(self.name, candidate.arch, candidate.config, student, has_weights=True))
        optimizer, scheduler = make_optimizer(student, self.finetune)
        index, first, steps = pending["round"], pending["first_step"], self.settings.finetune_steps
        checkpoint_path = self.run_dir / ROUND
        session_start = time.monotonic()
        saved = load_state(checkpoint_path) if checkpoint_path.exists() else None
        if saved is not None and saved["round"] == index:
            student.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            done, best, elapsed_before = saved["step"], saved["best"], saved["elapsed_s"]
        else:
            done, elapsed_before = 0, 0.0
            best = self._score(model, index, first, 0, None, log)
        prefetch = Prefetcher(self.images, self.sampling, self.config.batch_size, self.config.seed, first + done,
                              first + steps)
        bar = tqdm(total=steps, initial=done, unit="step", desc=f"round {index}", dynamic_ncols=True,
                   file=sys.stderr, mininterval=PROGRESS_INTERVAL_S)
        window_loss, window_steps = 0.0, 0
        try:
            while done < steps and stop.signum is None:
                loss = train_step(student, optimizer, next(prefetch), self.precision, self.teacher.module,
                                  self.settings.distill)
                scheduler.step()
                done += 1
                window_loss, window_steps = window_loss + loss, window_steps + 1
                bar.update()
                if done % self.config.log_every == 0:
                    log.write(step=first + done, round=index, loss=window_loss / window_steps)
                    window_loss, window_steps = 0.0, 0
                if done % self.config.val_every == 0 or done == steps:
                    best = self._score(model, index, first, done, best, log)
                if done % self.config.checkpoint_every == 0 or done == steps or stop.signum is not None:
                    save_state(checkpoint_path, {
                        "round": index, "step": done, "model": fp32_state(student),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "best": best,
                        "elapsed_s": elapsed_before + time.monotonic() - session_start,
                    })
        finally:
            prefetch.close()
            bar.close()
        if done < steps:
            return None
        best["elapsed_s"] = elapsed_before + time.monotonic() - session_start
        return best

    def _score(
        self, model: LoadedModel, index: int, first: int, done: int, best: dict[str, Any] | None, log: RunLog
    ) -> dict[str, Any]:
        """Validate the student; the round's best result so far (weights included)."""
        scores = validate(model, self.val_images)
        mean = mean_score(scores)
        improved = best is None or mean > best["psnr"]
        log.write(step=first + done, round=index, finetune_step=done, val_psnr=mean,
                  val_psnr_by_scale=scale_keys(scores), best=improved)
        if best is not None and not improved:
            return best
        return {"psnr": mean, "by_scale": scale_keys(scores), "step": done, "state": fp32_state(model.module)}

    def _conclude(self, pending: dict[str, Any], best: dict[str, Any], log: RunLog) -> None:
        """Accept or reject the round's result and commit the state (the round checkpoint is then obsolete)."""
        state, settings = self.state, self.settings
        drop = state["baseline"]["psnr"] - best["psnr"]
        accepted = drop <= settings.max_psnr_drop
        candidate = _network(pending["network"])
        index, kind, target = pending["round"], pending["kind"], pending["target"]
        record = {
            "round": index, "kind": kind, "target": target, "entropy": pending["entropy"],
            "entropies": pending.get("entropies", []),
            "val_psnr_y": best["psnr"], "val_psnr_y_by_scale": best["by_scale"], "drop_db": drop,
            "best_step": best["step"], "accepted": accepted, "step": pending["first_step"] + settings.finetune_steps,
        }
        state["rounds"].append(record)
        state["next_step"] = record["step"]
        state["pending"] = None
        state["elapsed_s"] += best["elapsed_s"]
        verdict = "kept" if accepted else "rejected"
        if accepted:
            network = Network(candidate.arch, candidate.config, best["state"])
            state["accepted"] = {"network": _record(network), "psnr": best["psnr"], "by_scale": best["by_scale"]}
            if kind == LINEARIZE:
                state["removed"] += 1
                site = block_site(network)
                block = site.block_of(target) if site is not None else None
                if site is not None and block is not None:
                    state["pending"] = {
                        "round": index + 1, "kind": DROP, "target": f"{site.prefix}.{block}", "entropy": None,
                        "network": _record(drop_block(network, site, block)), "first_step": state["next_step"],
                    }
        elif kind == LINEARIZE:
            state["final"] = (f"linearizing {target} cost {drop:.3f} dB (more than {settings.max_psnr_drop}), "
                              f"so the model of the last kept round is the result")
        save_state(self.run_dir / STATE, state)
        (self.run_dir / ROUND).unlink(missing_ok=True)
        log.write(step=record["step"], round=index, move=kind, target=target, val_psnr=best["psnr"], drop_db=drop,
                  accepted=accepted)
        say(f"round {index}: {kind} {target}: val Y-PSNR {best['psnr']:.3f} dB ({-drop:+.3f} dB against the "
             f"uncompressed model, best at fine-tune step {best['step']}): {verdict}")


def _record(net: Network) -> dict[str, Any]:
    """A network as plain data for the state file."""
    return {"arch": net.arch, "config": json.loads(json.dumps(net.config)), "state": net.state}


def _network(record: dict[str, Any]) -> Network:
    """A network from its state-file record."""
    return Network(record["arch"], record["config"], record["state"])


def scale_keys(scores: dict[int, float]) -> dict[str, float]:
    """{2: 30.1} → {"x2": 30.1}, as cards and logs write scales."""
    return {f"x{s}": v for s, v in scores.items()}


def _by_scale(scores: dict[int, float]) -> str:
    """Scores for a status line: "x2 30.12, x3 …"."""
    return ", ".join(f"x{s} {v:.2f}" for s, v in scores.items())


def say(message: str) -> None:
    """A status line that does not break a progress bar."""
    tqdm.write(message, file=sys.stderr)
