"""Little–Big adaptive rendering: run a model only in the regions where it is expected to pay, its little
companion elsewhere.

A model whose descriptor names a `little` companion — a cheaper registered model whose output it refines: for
`lite` its own bicubic skip, for `detail` the whole `lite` (specs.Companion) — can be rendered region by region:

1. **score**: the LR input is cut into routing blocks (the companion's `block`, BLOCK pixels by default; `detail`
   routes 32-pixel patches, ARM-style), each scored by the gradient energy of its luma, from the input alone (no
   decoding to decide);
2. **route**: a calibration stored in the model card (`card.extra["adaptive"]`, written by
   `enlarge calibrate-adaptive`) maps score and scale to the expected MSE of big and of little; blocks whose
   expected MSE reduction exceeds a threshold (default: the calibrated one), or the top `route_fraction` of them,
   are routed to the big model;
3. **render**, tile by tile as `render` does: the little model everywhere; the big model's encoder once, only on
   the LR windows around routed regions and not at all in tiles without them; its decoder only on output pixels
   under the routing mask, which is 1 on routed blocks and ramps linearly to 0 over 2·FEATHER_RADIUS output pixels
   around them. `out = lerp(little, big, mask)`: exactly big where routed, exactly little far from it, no visible
   step. A window holds its pixels plus the companion's `context` (None: the big model's whole receptive field,
   so its features are those of a whole-image encode; `detail`'s 36 pixels would make every window cover the
   image, so it sees 4 pixels and its features differ from a whole-image encode only near window borders).

The saving is the big model's work on what is not routed, less the little model's work everywhere. Routing
FULL_RENDER_SHARE of the blocks or more runs the plain big render, routing none the plain little render: the end
points are exactly the two models.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from enlarge.engine.precision import precision_context, resolve_precision
from enlarge.engine.query import QUERY_CHUNK, Frame, output_axis, query_grid
from enlarge.engine.render import Progress, render
from enlarge.engine.tiling import Span, channels_last_copy, plan_tiles
from enlarge.errors import EnlargeError, ModelError
from enlarge.metrics import PEAK, rgb_to_y
from enlarge.models.registry import Descriptor, LoadedModel, create
from enlarge.models.specs import ROUTE_BLOCK

BLOCK = ROUTE_BLOCK  # default LR pixels per side of a routing block: a 32×32 output region at ×4
FEATHER_RADIUS = 2  # output pixels; the mask falls from 1 to 0 over 2·radius pixels outside routed blocks
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec. 601: the score only needs a stable luma, not MATLAB's
CALIBRATION_KEY = "adaptive"  # where the calibration lives in `ModelCard.extra`
CALIBRATION_VERSION = 1
SCORE_NAME = "luma-gradient-energy"  # stored with the calibration: a table is only valid for the score it was fit on
N_BINS = 16  # score bins of the lookup table, equally populated on the calibration data
RETAINED_GAIN = 0.95  # the default threshold keeps this share of big's PSNR gain over little (calibration data)
MIN_MSE = 1e-10  # guards PSNR against an exact match
# Rows are decoded in bands on the union of their needed columns while that adds at most this share of pixels:
# each decoder call costs about as much as a thousand pixels, so fewer, larger calls win.
MERGE_SLACK = 0.1
# From this share of routed blocks on, the blend cannot beat the plain big render (the encoder runs nearly
# everywhere, the decoder on most pixels, plus the blend's own work; measured with lite on CPU): render big.
FULL_RENDER_SHARE = 0.5


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


@dataclass(frozen=True)
class AdaptiveOutput:
    """An adaptive render: the image, the share of output pixels in routed blocks, and the share the big decoder
    actually ran on (routed plus the feather around them)."""

    image: torch.Tensor
    routed: float
    decoded: float


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


def check_routable(model: LoadedModel, routing: Routing) -> None:
    """Fail fast, before any image, if `model` cannot be rendered adaptively as `routing` asks: no little path,
    or a threshold (given or default) without a calibration to apply it to."""
    little_model(model)
    if routing.route_fraction is None and RoutingCalibration.of(model.descriptor) is None:
        raise ModelError(
            f"model {model.descriptor.name!r} has no adaptive calibration in its card: run "
            "`enlarge calibrate-adaptive --model NAME`, or give a route fraction (--route-fraction)"
        )


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
        raise ModelError(
            "this model has no adaptive calibration in its card: run `enlarge calibrate-adaptive --model NAME`, "
            "or give a route fraction (--route-fraction)"
        )
    threshold = routing.threshold if routing.threshold is not None else calibration.threshold(scale)
    return calibration.expected_gain(scores.double(), scale) > threshold


def render_adaptive(
    model: LoadedModel,
    lr: torch.Tensor,
    out_size: tuple[int, int],
    routing: Routing = Routing(),
    tile: int | None = None,
    chunk: int = QUERY_CHUNK,
    precision: str | None = None,
    progress: Progress | None = None,
    little: LoadedModel | None = None,
) -> AdaptiveOutput:
    """Enlarge `lr` (1×3×h×w) to `out_size` (H, W) with `model` only where `routing` sends it, its little path
    (`little`, None: the registered one) elsewhere, with the routing geometry of the pair (`routing_geometry`).
    Routing nothing runs the plain little render; routing FULL_RENDER_SHARE of the blocks or more, the plain big
    render (reported as all routed), since the blend would not be faster.
    """
    little = little_model(model) if little is None else little
    little.module.to(lr.device)
    scale = effective_scale((lr.shape[-2], lr.shape[-1]), out_size)
    calibration = RoutingCalibration.of(model.descriptor)
    block, context = routing_geometry(model.descriptor, calibration)
    routed = route_blocks(block_scores(lr, block).cpu(), routing, calibration, scale)  # a small map
    share = float(routed.float().mean())
    if share >= FULL_RENDER_SHARE or share == 0.0:
        chosen, share = (model, 1.0) if share > 0.0 else (little, 0.0)
        image = render(chosen, lr, out_size, tile=tile, chunk=chunk, precision=precision, progress=progress)
        return AdaptiveOutput(image, share, share)
    return render_routed(model, little, lr, out_size, routed, tile, chunk, precision, progress, block, context)


def routing_geometry(descriptor: Descriptor, calibration: RoutingCalibration | None) -> tuple[int, int | None]:
    """(block, context) of a model's routing: the block its calibration was fit on (else its companion's), and
    the big encoder's context around routed blocks from its companion (None: exact)."""
    block = calibration.block if calibration is not None else descriptor.route_block
    return block, descriptor.route_context


def render_routed(
    model: LoadedModel,
    little: LoadedModel,
    lr: torch.Tensor,
    out_size: tuple[int, int],
    routed: torch.Tensor,
    tile: int | None = None,
    chunk: int = QUERY_CHUNK,
    precision: str | None = None,
    progress: Progress | None = None,
    block: int = BLOCK,
    context: int | None = None,
) -> AdaptiveOutput:
    """The blend for a given block map `routed` (ceil(h/block)×ceil(w/block) booleans), tile by tile.

    `context`: LR pixels of context the big encoder sees around routed regions (None: its whole receptive field,
    so its features there are exactly those of a whole-image encode)."""
    precision = resolve_precision(precision, model.descriptor.default_precision, lr.device)
    h, w = lr.shape[-2:]
    big_h, big_w = out_size
    margin = max(model.descriptor.receptive_field, little.descriptor.receptive_field)
    reach = model.descriptor.receptive_field if context is None else min(context, model.descriptor.receptive_field)
    plan = plan_tiles((h, w), out_size, tile, margin)
    rows, cols, rows_lr, cols_lr = plan.rows.to(lr.device), plan.cols.to(lr.device), plan.rows_lr, plan.cols_lr
    block_rows = _blocks_of(rows_lr, routed.shape[0], block)
    block_cols = _blocks_of(cols_lr, routed.shape[1], block)
    out = torch.empty(1, 3, big_h, big_w, device=lr.device)  # the routing map and the masks stay on the CPU
    decoded = 0
    with torch.inference_mode(), precision_context(precision, lr.device):
        for done, job in enumerate(plan.jobs):
            r, c = job.rows, job.cols
            target = out[:, :, r, c]
            target[:] = query_grid(
                little, little.module.encode(job.crop(lr)), job.frame, rows[r], cols[c], out_size, chunk
            )
            mask = feathered_mask(routed, block_rows, block_cols, (r.start, r.stop), (c.start, c.stop))
            boxes = _windows(mask > 0, rows_lr[r], cols_lr[c], reach, job.ys, job.xs, (h, w), block_rows[r])
            for box_rows, box_cols, window in boxes:
                crop = lr[:, :, window.top : window.top + window.height, window.left : window.left + window.width]
                feats = model.module.encode(channels_last_copy(crop))
                decoded += _decode_big(
                    model, feats, window, rows[r][box_rows], cols[c][box_cols], out_size, chunk,
                    mask[box_rows, box_cols].to(lr.device), target[:, :, box_rows, box_cols],
                )
            if progress is not None:
                progress(done + 1, len(plan.jobs))
    routed_pixels = torch.bincount(block_rows, minlength=routed.shape[0]).double() @ routed.double()
    routed_pixels = routed_pixels @ torch.bincount(block_cols, minlength=routed.shape[1]).double()
    pixels = big_h * big_w
    return AdaptiveOutput(out, float(routed_pixels) / pixels, decoded / pixels)


def _decode_big(
    model: LoadedModel,
    feats: object,
    frame: Frame,
    rows: torch.Tensor,
    cols: torch.Tensor,
    out_size: tuple[int, int],
    chunk: int,
    mask: torch.Tensor,
    target: torch.Tensor,
) -> int:
    """Blend the big model into `target` (the tile's little output, 1×3×R×C, a view of the image) where `mask` > 0;
    returns the number of output pixels decoded.

    `feats` encode the LR window `frame`, which covers every output pixel under the mask with the model's margin.
    The decoder runs on bands of rows (`_bands`), on their needed columns only.
    """
    decoded = 0
    for start, stop, needed in _bands(mask > 0):
        index = needed.nonzero().squeeze(1)
        big = query_grid(model, feats, frame, rows[start:stop], cols[index], out_size, chunk)
        band = target[:, :, start:stop]
        band[..., index] = torch.lerp(band[..., index], big, mask[start:stop, index])
        decoded += (stop - start) * len(index)
    return decoded


def _windows(
    need: torch.Tensor,
    rows_lr: torch.Tensor,
    cols_lr: torch.Tensor,
    margin: int,
    span_y: Span,
    span_x: Span,
    full: tuple[int, int],
    block_rows: torch.Tensor,
) -> list[tuple[slice, slice, Frame]]:
    """The LR windows to encode for a tile whose needed output pixels are `need` (R×C, centres `rows_lr`,
    `cols_lr` in LR pixel units; routing block row of each output row `block_rows`), each with the box of output
    rows and columns it serves.

    Two coverings are tried and the one with fewer LR pixels to encode is kept: the needed pixels cut into boxes
    wherever two of them lie more than 2·margin LR pixels apart along rows or columns, recursively (an XY cut, best
    for a few compact regions); or each band of routing-block rows cut that way on its own (best for scattered
    patches, which share no bounding box). Each box's window is its LR pixels plus `margin` (the tile's whole
    encoded range on sides where it reaches the tile's edge), within that range. So the encoder skips what no routed region depends on; with `margin` the model's receptive field,
    every decoded pixel sees the same features as in a whole-image encode.
    """

    def frame(box_rows: slice, box_cols: slice) -> Frame:
        """A box's window; on a side where the box reaches the tile's edge, the tile's whole encoded range, so that
        tiles meet as in the plain render and a fully routed tile is exactly the big model's."""
        top = max(span_y.pad_start, int(torch.floor(rows_lr[box_rows.start])) - margin)
        bottom = min(span_y.pad_stop, int(torch.floor(rows_lr[box_rows.stop - 1])) + 1 + margin)
        left = max(span_x.pad_start, int(torch.floor(cols_lr[box_cols.start])) - margin)
        right = min(span_x.pad_stop, int(torch.floor(cols_lr[box_cols.stop - 1])) + 1 + margin)
        top = span_y.pad_start if box_rows.start == 0 else top
        bottom = span_y.pad_stop if box_rows.stop == need.shape[0] else bottom
        left = span_x.pad_start if box_cols.start == 0 else left
        right = span_x.pad_stop if box_cols.stop == need.shape[1] else right
        return Frame(top, left, bottom - top, right - left, full)

    columns = slice(0, need.shape[1])
    whole = _xy_cut(need, rows_lr, cols_lr, 2 * margin, slice(0, need.shape[0]), columns)
    changes = ((block_rows[1:] != block_rows[:-1]).nonzero().squeeze(1) + 1).tolist()
    banded = [
        box
        for start, stop in itertools.pairwise([0, *changes, need.shape[0]])
        for box in _xy_cut(need, rows_lr, cols_lr, 2 * margin, slice(start, stop), columns)
    ]
    coverings = [[(rows, cols, frame(rows, cols)) for rows, cols in boxes] for boxes in (whole, banded)]
    return min(coverings, key=lambda windows: sum(f.height * f.width for _, _, f in windows))


def _xy_cut(
    need: torch.Tensor, rows_lr: torch.Tensor, cols_lr: torch.Tensor, gap: int, rows: slice, cols: slice
) -> list[tuple[slice, slice]]:
    """Tight boxes `(rows, cols)` covering the True entries of `need[rows, cols]`, split along either axis where
    consecutive flagged rows (columns) are more than `gap` LR pixels apart; none if nothing is flagged."""
    for axis, centres in ((0, rows_lr), (1, cols_lr)):
        span = rows if axis == 0 else cols
        flagged = need[rows, cols].any(dim=1 - axis).nonzero().squeeze(1) + span.start
        if flagged.numel() == 0:
            return []
        lr_index = torch.floor(centres[flagged]).long()
        breaks = ((lr_index[1:] - lr_index[:-1] > gap).nonzero().squeeze(1) + 1).tolist()
        bounds = itertools.pairwise([0, *breaks, len(flagged)])
        groups = [slice(int(flagged[a]), int(flagged[b - 1]) + 1) for a, b in bounds]
        if len(groups) > 1:
            return [
                box
                for group in groups
                for box in _xy_cut(need, rows_lr, cols_lr, gap, *((group, cols) if axis == 0 else (rows, group)))
            ]
        rows, cols = (groups[0], cols) if axis == 0 else (rows, groups[0])
    return [(rows, cols)]


def feathered_mask(
    routed: torch.Tensor,
    block_rows: torch.Tensor,
    block_cols: torch.Tensor,
    row_range: tuple[int, int],
    col_range: tuple[int, int],
    radius: int = FEATHER_RADIUS,
) -> torch.Tensor:
    """The routing mask on output pixels `[r0, r1) × [c0, c1)`: 1 on routed blocks, a linear ramp down to 0 over
    2·radius pixels around them (a dilation by `radius`, then a box average as wide), as if computed on the whole
    image: the region is widened by 2·radius before filtering. The image border does not fade it. Both filters are
    separable, so they run one axis at a time.
    """
    (r0, r1), (c0, c1) = row_range, col_range
    reach = 2 * radius
    e0, e1 = max(0, r0 - reach), min(len(block_rows), r1 + reach)
    f0, f1 = max(0, c0 - reach), min(len(block_cols), c1 + reach)
    nearby = routed[block_rows[e0:e1].unique()][:, block_cols[f0:f1].unique()]
    if not bool(nearby.any()):
        return torch.zeros(r1 - r0, c1 - c0)
    hard = routed[block_rows[e0:e1]][:, block_cols[f0:f1]].float()[None, None]
    kernel = 2 * radius + 1
    grown = hard
    for size, pad in (((kernel, 1), (radius, 0)), ((1, kernel), (0, radius))):
        grown = F.max_pool2d(grown, size, stride=1, padding=pad)
    soft = grown
    for size, pad in (((kernel, 1), (radius, 0)), ((1, kernel), (0, radius))):
        soft = F.avg_pool2d(soft, size, stride=1, padding=pad, count_include_pad=False)
    return soft[0, 0, r0 - e0 : r1 - e0, c0 - f0 : c1 - f0]


def _blocks_of(centres_lr: torch.Tensor, n_blocks: int, block: int = BLOCK) -> torch.Tensor:
    """The routing block of each output pixel along one axis, from its centre in LR pixel units."""
    return torch.div(centres_lr, block, rounding_mode="floor").long().clamp_(0, n_blocks - 1)


def _bands(need: torch.Tensor) -> list[tuple[int, int, torch.Tensor]]:
    """Bands `(start, stop, columns)` of consecutive rows of a boolean map covering every True entry: runs of
    identical rows, merged while decoding the union of their columns adds at most MERGE_SLACK extra pixels."""
    changes = ((need[1:] != need[:-1]).any(dim=1).nonzero().squeeze(1) + 1).tolist()
    bounds = [0, *changes, need.shape[0]]
    bands: list[tuple[int, int, torch.Tensor]] = []
    current: tuple[int, int, torch.Tensor] | None = None
    wanted = 0  # needed pixels in the current band
    for start, stop in itertools.pairwise(bounds):
        row = need[start]
        count = int(row.sum()) * (stop - start)
        if current is not None:
            union = current[2] | row
            if (stop - current[0]) * int(union.sum()) <= (1 + MERGE_SLACK) * (wanted + count):
                current, wanted = (current[0], stop, union), wanted + count
                continue
            bands.append(current)
            current = None
        if count:
            current, wanted = (start, stop, row), count
    if current is not None:
        bands.append(current)
    return bands


# ---- calibration ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockErrors:
    """One calibration image at one scale: each block's score, squared Y error (8-bit levels²) summed over its
    output pixels for little and for big, and its output pixel count (flattened blocks)."""

    scale: float
    scores: torch.Tensor
    sse_little: torch.Tensor
    sse_big: torch.Tensor
    pixels: torch.Tensor
    block: int = BLOCK  # LR pixels per side of a block

    def psnr(self, routed: torch.Tensor | None = None) -> float:
        """Image PSNR (Y) with the `routed` blocks from big and the rest from little (None: big everywhere)."""
        sse = self.sse_big if routed is None else torch.where(routed, self.sse_big, self.sse_little)
        mse = max(float(sse.sum() / self.pixels.sum()), MIN_MSE)
        return 10 * math.log10(PEAK**2 / mse)

    def oracle(self, fraction: float) -> torch.Tensor:
        """The `fraction` of blocks where big's true error reduction (known from the ground truth) is largest: the
        routing no score computed from the input can beat at that share, a bound for any router."""
        order = torch.argsort(self.sse_little - self.sse_big, descending=True, stable=True)
        routed = torch.zeros_like(self.scores, dtype=torch.bool)
        routed[order[: round(fraction * len(order))]] = True
        return routed


def block_errors(
    model: LoadedModel, little: LoadedModel, lr: torch.Tensor, hr: torch.Tensor, block: int = BLOCK
) -> BlockErrors:
    """Render `lr` (1×3×h×w) with big and little at the size of `hr` (1×3×H×W, 8-bit levels in [0, 1]) and
    measure their errors per routing block of `block` LR pixels (`errors_of_renders`)."""
    out_size = (hr.shape[-2], hr.shape[-1])
    return errors_of_renders(render(model, lr, out_size), render(little, lr, out_size), lr, hr, block)


def errors_of_renders(
    big: torch.Tensor, small: torch.Tensor, lr: torch.Tensor, hr: torch.Tensor, block: int = BLOCK
) -> BlockErrors:
    """The big and little renders of `lr` at the size of `hr`, rounded to 8 bits as the SR protocol does, and
    each one's squared Y error summed per routing block."""
    out_size = (hr.shape[-2], hr.shape[-1])
    rows, cols = output_axis(out_size[0]), output_axis(out_size[1])
    scores = block_scores(lr, block)
    hb, wb = scores.shape
    block_rows = _blocks_of((rows + 1) / 2 * lr.shape[-2], hb, block)
    block_cols = _blocks_of((cols + 1) / 2 * lr.shape[-1], wb, block)
    ids = (block_rows[:, None] * wb + block_cols[None, :]).flatten()
    reference = rgb_to_y(hr[0])

    def sse(image: torch.Tensor) -> torch.Tensor:
        quantised = (image[0].clamp(0, 1) * PEAK).round() / PEAK
        error = (rgb_to_y(quantised) - reference).square().flatten()
        return torch.zeros(hb * wb, dtype=torch.float64).index_add_(0, ids, error)

    pixels = torch.bincount(ids, minlength=hb * wb).double()
    scale = effective_scale((lr.shape[-2], lr.shape[-1]), out_size)
    return BlockErrors(scale, scores.flatten().double(), sse(small), sse(big), pixels, block)


def fit_calibration(samples: Sequence[BlockErrors], little: str, data: dict[str, Any]) -> RoutingCalibration:
    """The lookup table from calibration images: N_BINS equally populated score bins (over every sample), mean
    MSE of little and big per bin and scale, and per scale the default threshold (see `tune_threshold`)."""
    if not samples:
        raise ModelError("no calibration images: nothing to fit the adaptive lookup on")
    if len({s.block for s in samples}) > 1:
        raise ModelError("calibration samples were measured on different block sizes")
    scores = torch.cat([s.scores for s in samples])
    quantiles = torch.linspace(0, 1, N_BINS + 1, dtype=torch.float64)[1:-1]
    edges = tuple(torch.unique(torch.quantile(scores, quantiles)).tolist())
    bins = len(edges) + 1
    edge_tensor = torch.tensor(edges, dtype=torch.float64)
    tables = {}
    for scale in sorted({s.scale for s in samples}):
        group = [s for s in samples if s.scale == scale]
        index = torch.cat([torch.bucketize(s.scores, edge_tensor) for s in group])
        pixels = torch.bincount(index, torch.cat([s.pixels for s in group]), minlength=bins)
        mse = [
            _fill_empty(torch.bincount(index, torch.cat([getattr(s, name) for s in group]), minlength=bins), pixels)
            for name in ("sse_little", "sse_big")
        ]
        gains = mse[0] - mse[1]
        block_gains = [gains[torch.bucketize(s.scores, edge_tensor)] for s in group]
        threshold, summary = tune_threshold(group, block_gains)
        tables[scale] = ScaleTable(tuple(mse[0].tolist()), tuple(mse[1].tolist()), threshold, summary)
    return RoutingCalibration(edges, tables, little, samples[0].block, data)


def tune_threshold(group: Sequence[BlockErrors], gains: Sequence[torch.Tensor]) -> tuple[float, dict[str, float]]:
    """The largest threshold on expected gain (fewest routed blocks) whose routing keeps RETAINED_GAIN of big's
    mean PSNR gain over little on these images, and a summary of what it does there. Only thresholds ≥ 0 are
    considered: routing a block where big is expected to be worse never helps.
    """
    psnr_little = sum(s.psnr(torch.zeros_like(s.scores, dtype=torch.bool)) for s in group) / len(group)
    psnr_big = sum(s.psnr() for s in group) / len(group)
    candidates = sorted({0.0, *(float(g) for g in torch.cat(list(gains)).unique() if g > 0)}, reverse=True)
    chosen, psnr_chosen = 0.0, psnr_big
    for threshold in candidates:
        psnr = sum(s.psnr(g > threshold) for s, g in zip(group, gains)) / len(group)
        chosen, psnr_chosen = threshold, psnr
        if psnr - psnr_little >= RETAINED_GAIN * (psnr_big - psnr_little):
            break
    routed = sum(float(s.pixels[g > chosen].sum()) for s, g in zip(group, gains))
    total = sum(float(s.pixels.sum()) for s in group)
    summary = {"psnr_little": psnr_little, "psnr_big": psnr_big, "psnr_adaptive": psnr_chosen,
               "routed": routed / total, "images": float(len(group))}
    return chosen, summary


def _fill_empty(sums: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Per-bin means `sums / pixels`; a bin with no pixels takes the mean of the nearest bin that has some."""
    filled = torch.nonzero(pixels > 0).squeeze(1)
    nearest = filled[(torch.arange(len(pixels))[:, None] - filled[None, :]).abs().argmin(dim=1)]
    return sums[nearest] / pixels[nearest]
