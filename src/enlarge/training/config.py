"""The training configuration: a YAML file validated by pydantic, so a typo fails before any work starts.

Unknown or missing fields and values of the wrong type or range raise ConfigError with one line naming the
field (`enlarge.validation`), as for job files and model cards; `docs/schemas/train-config.schema.json` is
exported from the classes below. Relative paths (`data.data_root`, `run_dir`) are taken from the current folder,
as the CLI is run from the repository root.

`identity_hash` matches checkpoints to configs (`--resume`, compression runs). It is the JSON of `to_dict()` less
RUNTIME_FIELDS, so it must stay the same for every config that already has runs: a new field goes into
LATER_FIELDS with a default that means "as before", and every value keeps its JSON form (floats stay floats).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from enlarge.degradations import DegradationMix
from enlarge.engine import precision as precisions
from enlarge.errors import ConfigError
from enlarge.models.registry import ARCHS, SPECS
from enlarge.validation import field_defaults, validate

AUTO_THREADS = 0  # `threads: 0` uses every core of the machine
RUNS_DIR = Path("runs")
# Fields that change how a run is driven or watched but not which weights it produces; everything else is part
# of the config hash that `--resume` checks (data.data_root aside). Threads: a warning on change, not a refusal.
RUNTIME_FIELDS = frozenset(
    {"steps", "threads", "data_workers", "checkpoint_every", "val_every", "log_every", "run_dir", "val_crop",
     "val_scales", "val_jpeg"}
)
# Fields added after runs existed: hashed only when set away from their default, so older runs still resume.
LATER_FIELDS = ("schedule", "decay_steps", "warmup_steps", "min_lr", "ema", "init_from", "degrade")
LATER_DEGRADE_FIELDS = ("integer_scale",)  # the same within the degrade section
MIN_VAL_SCALE = 2
JPEG_QUALITIES = (1, 100)
# Fields are checked for their type as written (a "16" is not 16, a true is not 1) except numbers, which also
# come as text from YAML 1.1 (`1e-4` without a dot); unknown fields are errors.
SECTION_SETTINGS = ConfigDict(extra="forbid")

Precision = Literal["bf16", "fp32", "auto"]
Schedule = Literal["multistep", "cosine"]  # multistep: milestones × gamma; cosine: to min_lr over decay_steps


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    return value


Text = Annotated[str, Strict()]
Whole = Annotated[int, Strict()]  # an integer as written: not a bool, a float or text
Count = Annotated[int, Strict(), Field(gt=0)]
NonNegative = Annotated[int, Strict(), Field(ge=0)]
Number = Annotated[float, BeforeValidator(_not_a_bool), Field(allow_inf_nan=False)]


@dataclass(config=SECTION_SETTINGS)
class ModelSection:
    """Which network to train: a registered `name` (its spec is used), or an `arch` with its `config`."""

    name: Text | None = Field(None, description="a registered model (enlarge models); brings its own config")
    arch: Text | None = Field(None, description="a registered architecture, with `config`")
    config: dict[str, Any] | None = Field(None, description="the architecture's settings: build(arch, config)")

    @field_validator("name", "arch")
    @classmethod
    def _registered(cls, value: str | None, info: ValidationInfo) -> str | None:
        known = SPECS if info.field_name == "name" else ARCHS  # named models, architectures
        if value is not None and value not in known:
            raise ValueError(f"{value!r} is not registered; known: {', '.join(sorted(known))}")
        return value

    def __post_init__(self) -> None:
        if (self.name is None) == (self.arch is None):
            raise ValueError("give either `name` (a registered model) or `arch` with `config`, not both")
        if self.name is not None and self.config is not None:
            raise ValueError("`config` goes with `arch`; a registered `name` brings its own")

    def resolved(self) -> tuple[str, dict[str, Any]]:
        """(arch, config) to pass to `enlarge.models.build`."""
        if self.name is not None:
            spec = SPECS[self.name]
            return spec.arch, dict(spec.config)
        return str(self.arch), dict(self.config or {})


@dataclass(config=SECTION_SETTINGS)
class DataSection:
    """Training folders under `data_root` and the held-out validation images (paths relative to `data_root`)."""

    data_root: Text = Field(description="the folder of the training folders; not part of the config hash")
    train_dirs: list[Text] = Field(min_length=1, description="folders under data_root whose images are trained on")
    val_list: list[Text] = Field(default_factory=list, description="held-out images, paths under data_root")

    @field_validator("val_list")
    @classmethod
    def _held_out(cls, val_list: list[str], info: ValidationInfo) -> list[str]:
        if len(set(val_list)) != len(val_list):
            raise ValueError("names an image twice")
        train_dirs = info.data.get("train_dirs", [])
        for item in val_list:
            if Path(item).is_absolute() or ".." in Path(item).parts:
                raise ValueError(f"entry {item!r} must be a path inside data_root")
            if train_dirs and not any(Path(item).is_relative_to(d) for d in train_dirs):
                raise ValueError(f"entry {item!r} is not in one of data.train_dirs")
        return val_list

    @property
    def root(self) -> Path:
        return Path(self.data_root).expanduser()


@dataclass(config=SECTION_SETTINGS)
class DegradeSection:
    """Real-photo degradations of the training LR (`enlarge.degradations.DegradationMix`; every field optional)."""

    clean: Number = DegradationMix.clean
    kernel_weights: tuple[Number, Number, Number, Number] = DegradationMix.kernel_weights
    blur: Number = DegradationMix.blur
    blur_sigma: tuple[Number, Number] = DegradationMix.blur_sigma
    noise: Number = DegradationMix.noise
    noise_sigma: tuple[Number, Number] = DegradationMix.noise_sigma
    poisson_share: Number = DegradationMix.poisson_share
    poisson_peak: tuple[Number, Number] = DegradationMix.poisson_peak
    jpeg: Number = DegradationMix.jpeg
    jpeg_quality: tuple[Whole, Whole] = DegradationMix.jpeg_quality
    jpeg_420: Number = DegradationMix.jpeg_420
    integer_scale: Number = DegradationMix.integer_scale

    def __post_init__(self) -> None:
        self.mix()  # DegradationMix's ValueError names the field

    def mix(self) -> DegradationMix:
        return DegradationMix(**dataclasses.asdict(self))


@dataclass(config=SECTION_SETTINGS)
class TrainConfig:
    """Everything a training run needs; see configs/lite.yaml for a documented example."""

    model: ModelSection
    data: DataSection
    steps: Count = Field(description="total optimiser steps of the run")
    patch: Count = Field(48, description="LR side of the smallest training crop")
    scale_min: Number = Field(1.0, ge=1, description="smallest training scale")
    scale_max: Number = Field(4.0, description="largest training scale")
    sample_q: Count = Field(2304, description="HR pixels queried per crop")
    batch_size: Count = 16
    lr: Number = Field(1e-4, gt=0, description="Adam's learning rate (after warm-up)")
    milestones: list[Count] = Field(default_factory=list, description="multistep: steps where lr is multiplied by gamma")
    gamma: Number = Field(0.5, gt=0, le=1)
    schedule: Schedule = "multistep"
    decay_steps: Count | None = Field(None, description="cosine: steps from lr to min_lr (then min_lr)")
    warmup_steps: NonNegative = Field(0, description="linear warm-up from 0 to lr (both schedules)")
    min_lr: Number = Field(0.0, ge=0, description="cosine: the floor of the learning rate, at most lr")
    ema: Number = Field(0.0, ge=0, lt=1, description="decay of the weights' moving average (0: off), what is "
                                                     "validated and exported")
    init_from: Text | None = Field(None, description="weights to start from: a registered model or a state file; "
                                                     "grown if smaller")
    degrade: DegradeSection | None = Field(None, description="real-photo degradations of the LR (none: clean bicubic)")
    seed: Whole = 0
    precision: Precision = "auto"
    threads: NonNegative = Field(AUTO_THREADS, description="training threads; 0: every core")
    data_workers: NonNegative = Field(0, description="processes making batches ahead (0: one background thread); "
                                                     "the batches are the same for any count")
    checkpoint_every: Count = 200
    val_every: Count = 1000
    log_every: Count = 50
    val_crop: Count = Field(192, description="HR centre crop of each validation image; divisible by every val scale")
    val_scales: list[Annotated[Whole, Field(ge=MIN_VAL_SCALE)]] = Field(
        default_factory=lambda: [2, 3, 4], min_length=1, description="integer scales validated on"
    )
    val_jpeg: Annotated[Whole, Field(ge=JPEG_QUALITIES[0], le=JPEG_QUALITIES[1])] | None = Field(
        None, description="also validate on the LR re-encoded at this JPEG quality (robust models)"
    )
    run_dir: Text | None = Field(None, description="the run folder (default runs/NAME)")

    def __post_init__(self) -> None:
        """Checks across fields; each message names the fields it is about."""
        if self.scale_min > self.scale_max:
            raise ValueError(f"need 1 <= scale_min <= scale_max, got {self.scale_min} and {self.scale_max}")
        if self.sample_q > self.patch * self.patch:
            raise ValueError(f"sample_q ({self.sample_q}) exceeds the pixels of the smallest HR crop ({self.patch}²)")
        if self.milestones != sorted(set(self.milestones)):
            raise ValueError(f"milestones must be increasing positive steps, got {self.milestones}")
        if self.schedule == "cosine" and self.decay_steps is None:
            raise ValueError("schedule cosine needs decay_steps, a positive number of steps")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr must be in [0, lr], got {self.min_lr}")
        if self.val_crop % math.lcm(*self.val_scales):
            raise ValueError(f"val_crop ({self.val_crop}) must be divisible by every val scale {self.val_scales}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity_hash(self) -> str:
        """Hash of the fields that determine the weights a run produces (model resolved to arch + config)."""
        identity = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}
        defaults = field_defaults(TrainConfig)
        for name in LATER_FIELDS:
            if identity[name] == defaults[name]:
                del identity[name]
        if identity.get("degrade") is not None:
            section_defaults = field_defaults(DegradeSection)
            for name in LATER_DEGRADE_FIELDS:
                if identity["degrade"][name] == section_defaults[name]:
                    del identity["degrade"][name]
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
    """Validate a parsed config (a mapping: a YAML file, or `to_dict()` as a checkpoint holds it) into a
    TrainConfig; ConfigError `SOURCE: field: problem` on one line."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the config must be a mapping of fields, got {type(data).__name__}")
    return validate(TrainConfig, data, source)


def train_config_schema() -> dict[str, Any]:
    """The JSON schema of a training config file."""
    return TypeAdapter(TrainConfig).json_schema()


def training_precision(precision: str, device_type: str = "cpu") -> tuple[str, str | None]:
    """The precision a run trains in on `device_type`, and a warning when it is not the one asked for.

    `auto` and `bf16` give bf16 only where the device runs it natively: emulated bf16 on a CPU without AVX512-BF16
    or AMX is tens of times slower than fp32 (measured: 120 s per `detail` step against ~1 s), so a recipe that
    says bf16 falls back to fp32 there rather than crawl.
    """
    if precision == "fp32" or precisions.bf16_supported(device_type):
        return ("bf16" if precision == "auto" else precision), None
    if precision == "auto":
        return "fp32", None
    return "fp32", f"warning: this {device_type} has no native bf16 (emulated, tens of times slower): training in fp32"


def resolve_threads(threads: int) -> int:
    """The thread count to use: `threads`, or every core for 0."""
    return threads if threads != AUTO_THREADS else max(1, os.cpu_count() or 1)
