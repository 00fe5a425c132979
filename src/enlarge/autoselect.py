"""Data-side model choice (`--model auto`): per image, the best bundled model that fits a time budget and whose
expected gain is worth its time on this image.

- **Time**: `enlarge profile` measures each bundled model's seconds per output megapixel at a few scales on this
  machine and saves a small JSON profile (`$ENLARGE_PROFILE`, else `$XDG_CACHE_HOME/enlarge/profile.json`, else
  `~/.cache/enlarge/profile.json`). A prediction fits seconds/MP = a + b/s² to the measured scales: the decoder
  costs per output pixel, the encoder per input pixel, i.e. 1/s² per output pixel.
- **Gain**: a model's adaptive calibration (engine/adaptive/, in its card) gives the expected MSE of the model and
  of its little path for each LR block's texture score at each scale; over the image's blocks, the expected PSNR
  gain in dB. The little path itself (bicubic for `lite`) gains 0 by definition; an uncalibrated model's gain is
  unknown and taken as worth its time.
- **Choice**: among the models predicted to fit the budget, the cheapest whose expected gain is within
  MIN_GAIN_DB of the best one's; a smooth illustration at ×2 gets bicubic, a textured photo at ×4 the big model. If
  none fits, the fastest, and the reason says so.
- **Compressed inputs** (`TwinRoute`): a clean model's card may name a robust twin, trained on degraded inputs,
  with the JPEG quality below which the twin does better (measured by benchmarks/jpeg_routing.py). The default
  model and `auto`'s choice hand such JPEGs (quality from the file's quantisation tables, jpegquality.py) to the
  twin; twins are not candidates of their own, since they cost what their clean model costs.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from enlarge.engine.adaptive import RoutingCalibration, block_scores, effective_scale
from enlarge.engine.render import render
from enlarge.errors import ConfigError, ModelError, OutputError
from enlarge.fileutil import atomic_write_text
from enlarge.models.card import RobustTwin
from enlarge.models.registry import SPECS, LoadedModel, available, create

AUTO = "auto"  # the --model value that asks for a choice per image
PROFILE_ENV = "ENLARGE_PROFILE"
PROFILE_VERSION = 1
PROFILE_SCALES = (2.0, 3.0, 4.0)
PROFILE_SIDE = 128  # LR side of the synthetic image timed: ×4 gives a 0.26 MP output
PROFILE_REPEATS = 3  # the fastest of these runs is kept (the least disturbed by other work)
PROFILE_SEED = 0
MIN_GAIN_DB = 0.1  # a more expensive model must be expected to add at least this much PSNR to be chosen
PIXELS_PER_MP = 1_000_000


def profile_path() -> Path:
    """Where the speed profile lives: `$ENLARGE_PROFILE`, else the user cache folder."""
    override = os.environ.get(PROFILE_ENV)
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "enlarge" / "profile.json"


@dataclass(frozen=True)
class ModelTiming:
    """One model's measured speed: seconds per output megapixel at each profiled scale."""

    arch: str
    config: dict[str, Any]
    precision: str
    seconds_per_mp: dict[float, float]

    def predict(self, scale: float, out_megapixels: float) -> float:
        """Predicted seconds for an output of `out_megapixels` at `scale`: least squares of a + b/s² on the
        measured scales (a constant with one scale), never below zero."""
        xs = [1 / s**2 for s in self.seconds_per_mp]
        ys = list(self.seconds_per_mp.values())
        x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
        spread = sum((x - x_mean) ** 2 for x in xs)
        slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys)) / spread if spread > 0 else 0.0
        per_mp = y_mean + slope * (1 / scale**2 - x_mean)
        return max(per_mp, 0.0) * out_megapixels


@dataclass(frozen=True)
class Profile:
    """Speed of each profiled model on one machine, and what that machine was."""

    models: dict[str, ModelTiming]
    machine: dict[str, Any]

    def timing(self, model: LoadedModel, source: str = "the speed profile") -> ModelTiming:
        """The timing of `model`; ModelError if it was not profiled, or profiled with another architecture."""
        d = model.descriptor
        timing = self.models.get(d.name)
        if timing is None or timing.arch != d.arch or timing.config != d.config:
            raise ModelError(f"model {d.name!r} is not in {source} (or has changed since); run `enlarge profile`")
        return timing

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PROFILE_VERSION,
            "machine": self.machine,
            "models": {
                name: {"arch": t.arch, "config": t.config, "precision": t.precision,
                       "seconds_per_mp": {f"{s:g}": v for s, v in sorted(t.seconds_per_mp.items())}}
                for name, t in self.models.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Profile:
        """Validate a stored profile; ConfigError naming the file if it is not one."""
        if not isinstance(data, dict) or data.get("version") != PROFILE_VERSION:
            raise ConfigError(f"{source} is not an enlarge speed profile of version {PROFILE_VERSION}; "
                              "run `enlarge profile` again")
        try:
            models = {
                str(name): ModelTiming(
                    str(entry["arch"]), dict(entry["config"]), str(entry["precision"]),
                    {float(s): float(v) for s, v in entry["seconds_per_mp"].items()},
                )
                for name, entry in data["models"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{source} is malformed ({exc!r}); run `enlarge profile` again") from None
        if any(not t.seconds_per_mp for t in models.values()):
            raise ConfigError(f"{source} has a model without timings; run `enlarge profile` again")
        return cls(models, dict(data.get("machine", {})))

    @classmethod
    def read(cls, path: Path) -> Profile:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"no speed profile at {path}: run `enlarge profile` once on this machine (or set {PROFILE_ENV})"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"speed profile {path} is unreadable or not JSON: {exc}") from None
        return cls.from_dict(data, str(path))

    def write(self, path: Path) -> None:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the profile folder {path.parent} ({exc.strerror})") from None
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


def bundled_models() -> list[LoadedModel]:
    """Every registered model usable by name (weights bundled or not needed) except the robust twins of others:
    the candidates of `auto`."""
    models = [create(spec.name) for spec in SPECS.values() if available(spec)]
    twins = {twin.model for m in models if (twin := _declared_twin(m)) is not None}
    return [m for m in models if m.descriptor.name not in twins]


def _declared_twin(model: LoadedModel) -> RobustTwin | None:
    """The robust twin that `model`'s card declares, if it has a card and declares one."""
    card = model.descriptor.card
    return card.robust_twin() if card is not None else None


@dataclass(frozen=True)
class TwinRoute:
    """Compressed JPEGs (quality below `below_quality`) to `twin`, every other input to `clean`."""

    clean: LoadedModel
    twin: LoadedModel
    below_quality: int

    @classmethod
    def of(cls, clean: LoadedModel) -> TwinRoute | None:
        """The route `clean`'s card declares, with its twin loaded; None without one, or if the twin's weights
        are not installed (the clean model then serves every input)."""
        declared = _declared_twin(clean)
        if declared is None or declared.model not in SPECS or not available(SPECS[declared.model]):
            return None
        return cls(clean, create(declared.model), declared.below_quality)

    def choose(self, jpeg_quality: int | None) -> tuple[LoadedModel, str]:
        """The model for an input of `jpeg_quality` (None: not a JPEG), and why, in a few words."""
        clean, twin = self.clean.descriptor.name, self.twin.descriptor.name
        if jpeg_quality is None:
            return self.clean, f"{clean}: not a JPEG"
        if jpeg_quality < self.below_quality:
            return self.twin, f"{twin}: JPEG quality {jpeg_quality} < {self.below_quality}, compressed"
        return self.clean, f"{clean}: JPEG quality {jpeg_quality} >= {self.below_quality}, clean enough"


def measure(
    models: Sequence[LoadedModel],
    scales: Sequence[float] = PROFILE_SCALES,
    side: int = PROFILE_SIDE,
    repeats: int = PROFILE_REPEATS,
) -> Profile:
    """Time each model on a synthetic side×side image at each scale (fastest of `repeats`, after a warm-up)."""
    generator = torch.Generator().manual_seed(PROFILE_SEED)
    lr = torch.rand(1, 3, side, side, generator=generator)
    timings = {}
    for model in models:
        precision = model.descriptor.default_precision
        render(model, lr, (side, side), precision=precision)  # warm-up: first-call allocations, kernel choice
        per_mp = {}
        for scale in scales:
            out = round(side * scale)
            best = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                render(model, lr, (out, out), precision=precision)
                best = min(best, time.perf_counter() - start)
            per_mp[float(scale)] = best / (out * out / PIXELS_PER_MP)
        d = model.descriptor
        timings[d.name] = ModelTiming(d.arch, dict(d.config), precision, per_mp)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return Profile(timings, machine)


@dataclass(frozen=True)
class Selection:
    """The model chosen for one image, why, its predicted time, its expected gain (None: not calibrated), and
    whether it was predicted to fit the budget."""

    model: LoadedModel
    reason: str
    predicted_s: float
    expected_gain_db: float | None
    fits: bool


@dataclass(frozen=True)
class _Option:
    model: LoadedModel
    predicted_s: float
    gain_db: float | None

    @property
    def name(self) -> str:
        return self.model.descriptor.name

    @property
    def rank_gain(self) -> float:
        """The gain used to compare: unknown (uncalibrated) counts as worth any time."""
        return math.inf if self.gain_db is None else self.gain_db


class Selector:
    """Picks a model per image from `candidates` with `profile`'s timings, under an optional time budget."""

    def __init__(
        self,
        candidates: Sequence[LoadedModel],
        profile: Profile,
        time_budget: float | None = None,
        min_gain_db: float = MIN_GAIN_DB,
    ) -> None:
        if not candidates:
            raise ModelError("no models to choose from")
        if time_budget is not None and (not math.isfinite(time_budget) or time_budget <= 0):
            raise ConfigError(f"time budget must be a positive number of seconds, got {time_budget}")
        self.candidates = list(candidates)
        self.time_budget = time_budget
        self.min_gain_db = min_gain_db
        self._timings = {c.descriptor.name: profile.timing(c) for c in self.candidates}
        self._profiled_threads = profile.machine.get("threads")
        self._calibrations = {c.descriptor.name: RoutingCalibration.of(c.descriptor) for c in self.candidates}
        # The weight-free little paths (bicubic): a little that has a little of its own (lite, under detail) is not
        # a baseline, and a model's gain over it adds to the little's own gain (`expected_gain_db`).
        self._littles = {c.descriptor.name: c.descriptor.little for c in self.candidates}
        self._baselines = {c.descriptor.little for c in self.candidates if c.descriptor.little is not None} - {
            name for name, little in self._littles.items() if little is not None
        }

    @classmethod
    def bundled(cls, time_budget: float | None = None, path: Path | None = None) -> Selector:
        """A selector over every bundled model with the profile saved on this machine."""
        return cls(bundled_models(), Profile.read(path or profile_path()), time_budget)

    def expected_gain_db(self, model: LoadedModel, scores: torch.Tensor, scale: float) -> float | None:
        """Expected PSNR gain of `model` over its little path on blocks with these scores; 0 for a little path
        itself, None when the model is not calibrated."""
        return self._gain_db(model.descriptor.name, scores, scale)

    def _gain_db(self, name: str, scores: torch.Tensor, scale: float) -> float | None:
        """Expected gain of the candidate `name` over the baseline at the bottom of its chain of little models."""
        if name in self._baselines:
            return 0.0
        calibration = self._calibrations.get(name)
        if calibration is None:
            return None
        little, big = calibration.expected_mse(scores.double(), scale)
        own = 10 * math.log10(float(little.mean()) / max(float(big.mean()), 1e-12))
        below = self._littles.get(name)
        if below is None or below in self._baselines or below not in self._littles:
            return own
        under = self._gain_db(below, scores, scale)
        return None if under is None else own + under

    def choose(self, lr: torch.Tensor, out_size: tuple[int, int], passes: int = 1) -> Selection:
        """The model for enlarging `lr` (1×3×h×w in [0, 1]) to `out_size` (H, W) in `passes` model passes."""
        scale = effective_scale((lr.shape[-2], lr.shape[-1]), out_size)
        megapixels = out_size[0] * out_size[1] / PIXELS_PER_MP
        scores = block_scores(lr)
        options = sorted(
            (_Option(c, passes * self._timings[c.descriptor.name].predict(scale, megapixels),
                     self.expected_gain_db(c, scores, scale)) for c in self.candidates),
            key=lambda o: o.predicted_s,
        )
        budget = self.time_budget
        fitting = [o for o in options if budget is None or o.predicted_s <= budget]
        texture = f"texture {float(scores.mean()):.0f}"
        if not fitting:
            fastest = options[0]
            return Selection(
                fastest.model,
                f"nothing fits the {budget:g} s budget; took the fastest, predicted {fastest.predicted_s:.2f} s"
                + self._thread_note(),
                fastest.predicted_s, fastest.gain_db, fits=False,
            )
        best = max(fitting, key=lambda o: (o.rank_gain, -o.predicted_s))
        chosen = next(o for o in fitting if o.rank_gain >= best.rank_gain - self.min_gain_db)
        better = [o for o in options if budget is not None and o.predicted_s > budget
                  and o.rank_gain > chosen.rank_gain + self.min_gain_db]
        predicted = f"predicted {chosen.predicted_s:.2f} s"
        if len(options) == 1:
            reason = f"the only bundled model, {predicted}"
        elif chosen is not best:
            extra = best.rank_gain - chosen.rank_gain
            reason = f"{best.name} would add only {extra:.2f} dB here ({texture}, ×{scale:g}); {predicted}"
        elif better:
            reason = (f"{better[0].name} (predicted {better[0].predicted_s:.2f} s) does not fit the {budget:g} s "
                      f"budget; {predicted}")
        elif chosen.name in self._baselines:
            reason = f"no model is expected to do better here ({texture}, ×{scale:g}); {predicted}"
        else:
            gain = "gain not calibrated" if chosen.gain_db is None else f"expected +{chosen.gain_db:.2f} dB"
            within = "" if budget is None else f" ≤ {budget:g} s budget"
            reason = f"{gain} ({texture}, ×{scale:g}), {predicted}{within}"
        return Selection(chosen.model, reason + self._thread_note(), chosen.predicted_s, chosen.gain_db, fits=True)

    def _thread_note(self) -> str:
        """A warning for the reason when the profile was measured with another thread count than runs now."""
        threads = torch.get_num_threads()
        if self._profiled_threads in (None, threads):
            return ""
        return f" (profiled with {self._profiled_threads} threads, running with {threads}: re-run enlarge profile)"
