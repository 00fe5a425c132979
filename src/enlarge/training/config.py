"""The training configuration: a YAML file validated into dataclasses, so a typo fails before any work starts.

Unknown or missing fields and values of the wrong type or range raise ConfigError with a one-line message naming
the field. Relative paths (`data.data_root`, `run_dir`) are taken from the current folder, as the CLI is run from
the repository root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
import yaml

from enlarge.degradations import DegradationMix
from enlarge.errors import ConfigError
from enlarge.models.registry import ARCHS, SPECS

PRECISIONS = ("bf16", "fp32", "auto")
AUTO_THREADS = 0  # `threads: 0` uses every core of the machine
RUNS_DIR = Path("runs")
# Fields that change how a run is driven or watched but not which weights it produces; everything else is part
# of the config hash that `--resume` checks (data.data_root aside). Threads: a warning on change, not a refusal.
RUNTIME_FIELDS = frozenset(
    {"steps", "threads", "checkpoint_every", "val_every", "log_every", "run_dir", "val_crop", "val_scales", "val_jpeg"}
)
SCHEDULES = ("multistep", "cosine")
# Fields added after runs existed: hashed only when set away from their default, so older runs still resume.
LATER_FIELDS = ("schedule", "decay_steps", "warmup_steps", "min_lr", "ema", "init_from", "degrade")


@dataclass
class ModelSection:
    """Which network to train: a registered `name` (its spec is used), or an `arch` with its `config`."""

    name: str | None = None
    arch: str | None = None
    config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if (self.name is None) == (self.arch is None):
            raise ConfigError("model: give either `name` (a registered model) or `arch` with `config`, not both")
        if self.name is not None:
            if self.name not in SPECS:
                raise ConfigError(f"model.name {self.name!r} is not registered; known: {', '.join(sorted(SPECS))}")
            if self.config is not None:
                raise ConfigError("model: `config` goes with `arch`; a registered `name` brings its own")
        elif self.arch not in ARCHS:
            raise ConfigError(f"model.arch {self.arch!r} is unknown; known: {', '.join(sorted(ARCHS))}")

    def resolved(self) -> tuple[str, dict[str, Any]]:
        """(arch, config) to pass to `enlarge.models.build`."""
        if self.name is not None:
            spec = SPECS[self.name]
            return spec.arch, dict(spec.config)
        return str(self.arch), dict(self.config or {})


@dataclass
class DataSection:
    """Training folders under `data_root` and the held-out validation images (paths relative to `data_root`)."""

    data_root: str
    train_dirs: list[str]
    val_list: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.train_dirs:
            raise ConfigError("data.train_dirs must list at least one folder")
        if len(set(self.val_list)) != len(self.val_list):
            raise ConfigError("data.val_list names an image twice")
        for item in self.val_list:
            if Path(item).is_absolute() or ".." in Path(item).parts:
                raise ConfigError(f"data.val_list entry {item!r} must be a path inside data_root")
            if not any(Path(item).is_relative_to(d) for d in self.train_dirs):
                raise ConfigError(f"data.val_list entry {item!r} is not in one of data.train_dirs")

    @property
    def root(self) -> Path:
        return Path(self.data_root).expanduser()


@dataclass
class DegradeSection:
    """Real-photo degradations of the training LR (`enlarge.degradations.DegradationMix`; every field optional)."""

    clean: float = DegradationMix.clean
    kernel_weights: tuple[float, float, float, float] = DegradationMix.kernel_weights
    blur: float = DegradationMix.blur
    blur_sigma: tuple[float, float] = DegradationMix.blur_sigma
    noise: float = DegradationMix.noise
    noise_sigma: tuple[float, float] = DegradationMix.noise_sigma
    poisson_share: float = DegradationMix.poisson_share
    poisson_peak: tuple[float, float] = DegradationMix.poisson_peak
    jpeg: float = DegradationMix.jpeg
    jpeg_quality: tuple[int, int] = DegradationMix.jpeg_quality
    jpeg_420: float = DegradationMix.jpeg_420

    def __post_init__(self) -> None:
        try:
            self.mix()
        except ValueError as exc:
            raise ConfigError(f"degrade: {exc}") from None

    def mix(self) -> DegradationMix:
        return DegradationMix(**dataclasses.asdict(self))


@dataclass
class TrainConfig:
    """Everything a training run needs; see configs/lite.yaml for a documented example."""

    model: ModelSection
    data: DataSection
    steps: int
    patch: int = 48
    scale_min: float = 1.0
    scale_max: float = 4.0
    sample_q: int = 2304
    batch_size: int = 16
    lr: float = 1e-4
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5
    schedule: str = "multistep"  # multistep (milestones × gamma) | cosine (to min_lr over decay_steps)
    decay_steps: int | None = None  # cosine: steps from lr to min_lr (then min_lr); part of the config hash
    warmup_steps: int = 0  # linear warm-up from 0 to lr (both schedules)
    min_lr: float = 0.0
    ema: float = 0.0  # decay of the exponential moving average of the weights (0: off); validated and exported
    init_from: str | None = None  # weights to start from: a registered model or a state file; grown if smaller
    degrade: DegradeSection | None = None  # real-photo degradations of the LR (None: clean bicubic only)
    seed: int = 0
    precision: str = "auto"
    threads: int = AUTO_THREADS
    checkpoint_every: int = 200
    val_every: int = 1000
    log_every: int = 50
    val_crop: int = 192  # HR centre crop of each validation image; divisible by every val scale
    val_scales: list[int] = field(default_factory=lambda: [2, 3, 4])
    val_jpeg: int | None = None  # also validate on the LR re-encoded at this JPEG quality (robust models)
    run_dir: str | None = None

    def __post_init__(self) -> None:
        positive = ("steps", "patch", "sample_q", "batch_size", "checkpoint_every", "val_every", "log_every", "val_crop")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 1 <= self.scale_min <= self.scale_max:
            raise ConfigError(f"need 1 <= scale_min <= scale_max, got {self.scale_min} and {self.scale_max}")
        if self.sample_q > self.patch * self.patch:
            raise ConfigError(f"sample_q ({self.sample_q}) exceeds the pixels of the smallest HR crop ({self.patch}²)")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if self.milestones != sorted(set(self.milestones)) or any(m <= 0 for m in self.milestones):
            raise ConfigError(f"milestones must be increasing positive steps, got {self.milestones}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.schedule == "cosine" and (self.decay_steps is None or self.decay_steps <= 0):
            raise ConfigError("schedule cosine needs decay_steps, a positive number of steps")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be 0 or positive, got {self.warmup_steps}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"min_lr must be in [0, lr], got {self.min_lr}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be a decay in [0, 1), got {self.ema}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.threads < 0:
            raise ConfigError(f"threads must be 0 (all cores) or positive, got {self.threads}")
        if not self.val_scales or any(s < 2 for s in self.val_scales):
            raise ConfigError(f"val_scales must be integer scales >= 2, got {self.val_scales}")
        if self.val_jpeg is not None and not 1 <= self.val_jpeg <= 100:
            raise ConfigError(f"val_jpeg must be a JPEG quality in 1..100, got {self.val_jpeg}")
        if self.val_crop % math.lcm(*self.val_scales):
            raise ConfigError(f"val_crop ({self.val_crop}) must be divisible by every val scale {self.val_scales}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity_hash(self) -> str:
        """Hash of the fields that determine the weights a run produces (model resolved to arch + config)."""
        identity = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
        for name in LATER_FIELDS:
            if identity[name] == defaults[name]:
                del identity[name]
        del identity["data"]["data_root"]  # where the images live may differ between machines
        arch, config = self.model.resolved()
        identity["model"] = {"arch": arch, "config": config}
        text = json.dumps(identity, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def run_path(self, name: str) -> Path:
        """The run folder: `run_dir` if set, else `runs/NAME`."""
        return Path(self.run_dir).expanduser() if self.run_dir else RUNS_DIR / name


def load_config(path: Path) -> TrainConfig:
    """Read and validate a training YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is unreadable or not YAML: {exc}".replace("\n", " ")) from None
    return config_from_dict(data, source=str(path))


def config_from_dict(data: Any, source: str = "config") -> TrainConfig:
    """Validate a parsed config (a mapping) into a TrainConfig; errors name `source` and the field."""
    try:
        return _build(TrainConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def resolve_precision(precision: str) -> str:
    """`auto` → bf16 where the CPU has AVX-512 and a bf16 autocast matmul runs, else fp32."""
    if precision != "auto":
        return precision
    if "AVX512" not in torch.backends.cpu.get_cpu_capability():
        return "fp32"
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            probe = torch.ones(4, 4) @ torch.ones(4, 4)
    except RuntimeError:
        return "fp32"
    return "bf16" if probe.dtype == torch.bfloat16 and bool(torch.isfinite(probe).all()) else "fp32"


def resolve_threads(threads: int) -> int:
    """The thread count to use: `threads`, or every core for 0."""
    return threads if threads != AUTO_THREADS else max(1, os.cpu_count() or 1)


def _build(cls: type, data: Any, where: str) -> Any:
    """Instantiate dataclass `cls` from a mapping, checking field names and types recursively."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'the config'} must be a mapping of fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(where + str(k) for k in unknown)}")
    missing = [
        name for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing field(s) {', '.join(where + k for k in missing)}")
    values = {name: _convert(hints[name], value, where + name) for name, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    """Check `value` against the type annotation `hint` (int, float, str, list[...], dict, X | None, dataclass)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _convert(inner, value, where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where + ".")
    if origin is tuple:
        items = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise ConfigError(f"{where} must be a list of {len(items)} values, got {value!r}")
        return tuple(_convert(inner, item, f"{where}[{i}]") for i, (inner, item) in enumerate(zip(items, value)))
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (inner,) = typing.get_args(hint)
        return [_convert(inner, item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if hint is float:
        return _as_float(value, where)
    if hint in (int, str) and isinstance(value, hint) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{where} must be {getattr(hint, '__name__', hint)}, got {value!r}")


def _as_float(value: Any, where: str) -> float:
    """A number, also from a string such as `1e-4` (YAML 1.1 reads exponents without a dot as text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{where} must be a number, got {value!r}")
