"""Little–Big routing policy: which blocks of the input the big model renders, and the calibration that decides.

A block's score is the gradient energy of its luma, from the input alone; the calibration in the model card
(`card.extra["adaptive"]`, written by `enlarge calibrate-adaptive`) maps score and scale to the expected MSE of
big and of its little companion; blocks whose expected MSE reduction exceeds a threshold (default: the calibrated
one), or the top `route_fraction` of them, are routed to the big model. The block size is the companion's
(specs.Companion), or the one the calibration was fit on.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from enlarge.errors import EnlargeError, ModelError
from enlarge.metrics import PEAK
from enlarge.models.registry import Descriptor, LoadedModel, create
from enlarge.models.specs import ROUTE_BLOCK

BLOCK = ROUTE_BLOCK  # default LR pixels per side of a routing block: a 32×32 output region at ×4


LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec. 601: the score only needs a stable luma, not MATLAB's


CALIBRATION_KEY = "adaptive"  # where the calibration lives in `ModelCard.extra`


CALIBRATION_VERSION = 1


SCORE_NAME = "luma-gradient-energy"  # stored with the calibration: a table is only valid for the score it was fit on


@dataclass(frozen=True)
class Routing:
    """Which blocks the big model decodes: expected MSE reduction (Y, 8-bit levels² per output pixel) above
    `threshold` (None: the calibrated default), or the `route_fraction` of blocks with the largest expected gain
    (ranked by score when the model has no calibration)."""

    threshold: float | None = None
    route_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and self.route_fraction is not None:
            raise EnlargeError("give either a routing threshold or a route fraction, not both")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise EnlargeError(f"routing threshold must be a finite number, got {self.threshold}")
        if self.route_fraction is not None and not 0.0 <= self.route_fraction <= 1.0:
            raise EnlargeError(f"route fraction must be between 0 and 1, got {self.route_fraction}")


@dataclass(frozen=True)
class ScaleTable:
    """The lookup at one calibrated scale: mean MSE per score bin of little and big, and the default threshold.

    `summary` records what the default did on the calibration data (mean PSNRs, routed share), for reports.
    """

    mse_little: tuple[float, ...]
    mse_big: tuple[float, ...]
    threshold: float
    summary: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingCalibration:
    """Score → expected MSE of big and of little, per calibrated scale (linear in between, clamped outside)."""

    edges: tuple[float, ...]  # N−1 inner bin edges on the block score
    scales: dict[float, ScaleTable]
    little: str
    block: int = BLOCK
    data: dict[str, Any] = field(default_factory=dict)  # what it was measured on

    def bins(self, scores: torch.Tensor) -> torch.Tensor:
        """The bin index of each score."""
        return torch.bucketize(scores, torch.tensor(self.edges, dtype=scores.dtype))

    def expected_mse(self, scores: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Expected MSE of little and of big for blocks with these scores at `scale` (same shape as `scores`)."""
        little, big, _ = self._at(scale)
        index = self.bins(scores)
        return little.to(scores.dtype)[index], big.to(scores.dtype)[index]

    def expected_gain(self, scores: torch.Tensor, scale: float) -> torch.Tensor:
        """Expected MSE reduction of big over little per block (positive: big is better)."""
        return self.bin_gains(scale).to(scores.dtype)[self.bins(scores)]

    def bin_gains(self, scale: float) -> torch.Tensor:
        """Expected MSE reduction of big over little in each score bin at `scale`."""
        little, big, _ = self._at(scale)
        return little - big

    def threshold(self, scale: float) -> float:
        """The calibrated default threshold at `scale`."""
        return float(self._at(scale)[2])

    def _at(self, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mse_little, mse_big, threshold) interpolated linearly between the two calibrated scales around `scale`."""
        known = sorted(self.scales)
        scale = min(max(scale, known[0]), known[-1])
        upper = next(s for s in known if s >= scale)
        lower = max(s for s in known if s <= scale)
        t = 0.0 if upper == lower else (scale - lower) / (upper - lower)

        def blend(pick: Any) -> torch.Tensor:
            a = torch.tensor(pick(self.scales[lower]), dtype=torch.float64)
            b = torch.tensor(pick(self.scales[upper]), dtype=torch.float64)
            return torch.lerp(a, b, t)

        return blend(lambda s: s.mse_little), blend(lambda s: s.mse_big), blend(lambda s: s.threshold)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the card."""
        return {
            "version": CALIBRATION_VERSION,
            "score": SCORE_NAME,
            "block": self.block,
            "little": self.little,
            "edges": list(self.edges),
            "scales": {
                f"{scale:g}": {
                    "mse_little": list(t.mse_little), "mse_big": list(t.mse_big),
                    "threshold": t.threshold, "summary": dict(t.summary),
                }
                for scale, t in sorted(self.scales.items())
            },
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> RoutingCalibration:
        """Validate a stored calibration; ModelError if it is malformed or was fit for another score or block."""
        if data.get("version") != CALIBRATION_VERSION or data.get("score") != SCORE_NAME:
            raise ModelError(
                f"{source}: adaptive calibration is for another version or score; run enlarge calibrate-adaptive again"
            )
        try:
            edges = tuple(float(e) for e in data["edges"])
            scales = {
                float(key): ScaleTable(
                    tuple(float(v) for v in value["mse_little"]), tuple(float(v) for v in value["mse_big"]),
                    float(value["threshold"]), {k: float(v) for k, v in value.get("summary", {}).items()},
                )
                for key, value in data["scales"].items()
            }
            calibration = cls(edges, scales, str(data["little"]), int(data["block"]), dict(data.get("data", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{source}: adaptive calibration is malformed ({exc!r})") from None
        sizes = {len(t.mse_little) for t in scales.values()} | {len(t.mse_big) for t in scales.values()}
        if not scales or sizes != {len(edges) + 1} or calibration.block < 1:
            raise ModelError(f"{source}: adaptive calibration tables do not match their bins or block size")
        return calibration

    @classmethod
    def of(cls, descriptor: Descriptor) -> RoutingCalibration | None:
        """The calibration in a model's card, None if it has none."""
        stored = descriptor.card.extra.get(CALIBRATION_KEY) if descriptor.card is not None else None
        return None if stored is None else cls.from_dict(stored, f"model card of {descriptor.name}")


def little_model(model: LoadedModel) -> LoadedModel:
    """The registered little companion of `model` (loaded once per process); ModelError if its descriptor names
    none."""
    name = model.descriptor.little
    if name is None:
        raise ModelError(
            f"model {model.descriptor.name!r} has no cheap little path (no registered model it refines), so it "
            "cannot be rendered adaptively; use a model such as lite or detail"
        )
    return _loaded_little(name)


@functools.cache
def _loaded_little(name: str) -> LoadedModel:
    """A little model by name, loaded once: its weights (lite's, for detail) are not re-read for every image."""
    return create(name)


def uncalibrated(which: str) -> ModelError:
    """The error for a threshold route (given or default) on `which` model ("model 'x'", "this model"), whose card
    holds no routing calibration."""
    return ModelError(f"{which} has no adaptive calibration in its card: calibrate it (enlarge calibrate-adaptive) "
                      "or give a route fraction", setting="route_fraction")


def check_routable(model: LoadedModel, routing: Routing) -> None:
    """Fail fast, before any image, if `model` cannot be rendered adaptively as `routing` asks: no little path,
    or a threshold (given or default) without a calibration to apply it to."""
    little_model(model)
    if routing.route_fraction is None and RoutingCalibration.of(model.descriptor) is None:
        raise uncalibrated(f"model {model.descriptor.name!r}")


def block_scores(lr: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """Difficulty of each BLOCK×BLOCK region of `lr` (1×3×h×w in [0, 1]) → ceil(h/B)×ceil(w/B).

    The mean squared forward difference of luma along both axes, in 8-bit levels²: flat regions score near 0,
    edges and texture high. Computed in float32 from the input only.
    """
    weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32, device=lr.device).view(3, 1, 1)
    luma = (lr[0].float() * weights).sum(0) * PEAK
    energy = torch.zeros_like(luma)
    energy[:-1] += (luma[1:] - luma[:-1]).square()
    energy[:, :-1] += (luma[:, 1:] - luma[:, :-1]).square()
    h, w = energy.shape
    hb, wb = math.ceil(h / block), math.ceil(w / block)
    sums = F.pad(energy, (0, wb * block - w, 0, hb * block - h)).view(hb, block, wb, block).sum(dim=(1, 3))
    counts = F.pad(torch.ones_like(energy), (0, wb * block - w, 0, hb * block - h)).view(hb, block, wb, block)
    return (sums / counts.sum(dim=(1, 3))).cpu()


def effective_scale(lr_size: tuple[int, int], out_size: tuple[int, int]) -> float:
    """One scale for a (possibly anisotropic) enlargement: the geometric mean of the two axes' factors."""
    return math.sqrt(out_size[0] * out_size[1] / (lr_size[0] * lr_size[1]))


def route_blocks(
    scores: torch.Tensor, routing: Routing, calibration: RoutingCalibration | None, scale: float
) -> torch.Tensor:
    """Boolean map of the blocks the big model decodes (shape of `scores`)."""
    if routing.route_fraction is not None:
        count = round(routing.route_fraction * scores.numel())
        flat = scores.flatten().double()
        order = torch.sort(flat, descending=True, stable=True).indices  # ties in expected gain: higher score first
        if calibration is not None:
            gains = calibration.expected_gain(flat, scale)[order]
            order = order[torch.sort(gains, descending=True, stable=True).indices]
        routed = torch.zeros(scores.numel(), dtype=torch.bool)
        routed[order[:count]] = True
        return routed.view(scores.shape)
    if calibration is None:
        raise uncalibrated("this model")
    threshold = routing.threshold if routing.threshold is not None else calibration.threshold(scale)
    return calibration.expected_gain(scores.double(), scale) > threshold


def routing_geometry(descriptor: Descriptor, calibration: RoutingCalibration | None) -> tuple[int, int | None]:
    """(block, context) of a model's routing: the block its calibration was fit on (else its companion's), and
    the big encoder's context around routed blocks from its companion (None: exact)."""
    block = calibration.block if calibration is not None else descriptor.route_block
    return block, descriptor.route_context


def blocks_of(centres_lr: torch.Tensor, n_blocks: int, block: int = BLOCK) -> torch.Tensor:
    """The routing block of each output pixel along one axis, from its centre in LR pixel units."""
    return torch.div(centres_lr, block, rounding_mode="floor").long().clamp_(0, n_blocks - 1)
