"""Checkpoints of a training run, written atomically so a kill at any moment leaves the last good one in place.

`last.pt` holds everything a resume needs (model, optimizer and scheduler state, the weights' moving average, step,
config and its hash, best validation score, training wall time); `best.pt` holds only the model state with the best
validation PSNR (the moving average's, when the run keeps one: that is what is validated and exported);
`run.json` holds the checkpoint's record without tensors (config, step, time, scores), so a finished run can drop its
large `last.pt` (retire it: scripts/retire_runs.py) and still be reported and exported from `best.pt`.
Model and optimizer state stay fp32 (autocast never changes the stored weights), so a lite run's checkpoint is a
few MB and can be committed to continue elsewhere.
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from enlarge.errors import ConfigError
from enlarge.fileutil import atomic_write_bytes, atomic_write_text

LAST = "last.pt"
BEST = "best.pt"
LOG = "log.jsonl"
RECORD = "run.json"
CHECKPOINT_FORMAT = 1


@dataclass
class Checkpoint:
    """The resumable state of a run after `step` completed steps."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    config: dict[str, Any]  # TrainConfig.to_dict()
    config_hash: str
    name: str
    precision: str  # the resolved precision the run trains in
    threads: int
    best_psnr: float | None = None
    best_step: int | None = None
    elapsed_s: float = 0.0  # training wall time over every session of the run
    ema: dict[str, torch.Tensor] | None = None  # the moving average of the weights, when the config asks for one

    def to_dict(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, **self.__dict__}

    def record(self) -> RunRecord:
        """What the checkpoint says about the run, without its tensors."""
        return RunRecord(**{f.name: getattr(self, f.name) for f in fields(RunRecord) if hasattr(self, f.name)})


@dataclass
class RunRecord:
    """A run's description after `step` steps: what reports and model cards need, a few kB of JSON."""

    step: int
    config: dict[str, Any]
    config_hash: str
    name: str
    precision: str
    threads: int
    best_psnr: float | None = None
    best_step: int | None = None
    elapsed_s: float = 0.0
    start_psnr: float | None = None  # validation of the init_from weights, stored when the run is retired


def save_record(run_dir: Path, record: RunRecord) -> None:
    """Write `record` to the run's `run.json` atomically."""
    atomic_write_text(Path(run_dir) / RECORD, json.dumps(asdict(record), indent=1) + "\n")


def load_record(run_dir: Path) -> RunRecord:
    """The run's record: its `run.json`, else read off its `last.pt`; ConfigError if it has neither or it is bad."""
    path = Path(run_dir) / RECORD
    if not path.exists():
        return load_checkpoint(Path(run_dir) / LAST).record()
    try:
        return RunRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"run record {path} is unreadable: {exc}") from None


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` atomically (temp file, fsync, rename)."""
    save_state(path, checkpoint.to_dict())


def save_state(path: Path, state: dict[str, Any]) -> None:
    """`torch.save` of `state` to `path` atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_state(path: Path) -> dict[str, Any]:
    """A `.pt` file written by this module (safe loading: tensors and plain containers only)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {path} not found") from None
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise ConfigError(f"checkpoint {path} is corrupt or not an enlarge checkpoint: {exc}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path} is not an enlarge checkpoint")
    return state


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a `last.pt`-style checkpoint; ConfigError if it is missing, corrupt or of another format."""
    state = load_state(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"checkpoint {path} is not an enlarge training checkpoint (format {state.get('format')})")
    fields = {k: v for k, v in state.items() if k != "format"}
    try:
        return Checkpoint(**fields)
    except TypeError as exc:
        raise ConfigError(f"checkpoint {path} is incomplete: {exc}") from None


def fp32_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict as detached fp32 copies."""
    return {k: v.detach().to(torch.float32).clone() for k, v in module.state_dict().items()}
