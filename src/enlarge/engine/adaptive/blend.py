"""Little–Big blended rendering: the little model everywhere, the big model only around routed blocks.

Tile by tile as `render` does: the little model on the whole tile; the big model's encoder once per LR window
around routed regions and not at all in tiles without them; its decoder only on output pixels under the routing
mask, which is 1 on routed blocks and ramps linearly to 0 over 2·FEATHER_RADIUS output pixels around them.
`out = lerp(little, big, mask)`: exactly big where routed, exactly little far from it, no visible step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from enlarge.engine.adaptive.routing import (
    BLOCK,
    Routing,
    RoutingCalibration,
    block_scores,
    blocks_of,
    effective_scale,
    little_model,
    route_blocks,
    routing_geometry,
)
from enlarge.engine.precision import precision_context, resolve_precision
from enlarge.engine.query import QUERY_CHUNK, Frame, query_grid
from enlarge.engine.render import Progress, render
from enlarge.engine.tiling import Span, channels_last_copy, plan_tiles
from enlarge.models.registry import LoadedModel

FEATHER_RADIUS = 2  # output pixels; the mask falls from 1 to 0 over 2·radius pixels outside routed blocks


# Rows are decoded in bands on the union of their needed columns while that adds at most this share of pixels:
# each decoder call costs about as much as a thousand pixels, so fewer, larger calls win.
MERGE_SLACK = 0.1


# From this share of routed blocks on, the blend cannot beat the plain big render (the encoder runs nearly
# everywhere, the decoder on most pixels, plus the blend's own work; measured with lite on CPU): render big.
FULL_RENDER_SHARE = 0.5


@dataclass(frozen=True)
class AdaptiveOutput:
    """An adaptive render: the image, the share of output pixels in routed blocks, the share the big decoder
    actually ran on (routed plus the feather around them), and the big encoder's LR pixels as a share of those
    of the plain big render (the work a busy machine's timings blur)."""

    image: torch.Tensor
    routed: float
    decoded: float
    encoded: float


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
        return AdaptiveOutput(image, share, share, share)
    return render_routed(model, little, lr, out_size, routed, tile, chunk, precision, progress, block, context)


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
    block_rows = blocks_of(rows_lr, routed.shape[0], block)
    block_cols = blocks_of(cols_lr, routed.shape[1], block)
    out = torch.empty(1, 3, big_h, big_w, device=lr.device)  # the routing map and the masks stay on the CPU
    decoded = encoded = 0
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
                encoded += window.height * window.width
                decoded += _decode_big(
                    model, feats, window, rows[r][box_rows], cols[c][box_cols], out_size, chunk,
                    mask[box_rows, box_cols].to(lr.device), target[:, :, box_rows, box_cols],
                )
            if progress is not None:
                progress(done + 1, len(plan.jobs))
    routed_pixels = torch.bincount(block_rows, minlength=routed.shape[0]).double() @ routed.double()
    routed_pixels = routed_pixels @ torch.bincount(block_cols, minlength=routed.shape[1]).double()
    pixels = big_h * big_w
    plain = sum(job.frame.height * job.frame.width for job in plan.jobs)  # what the plain big render encodes
    return AdaptiveOutput(out, float(routed_pixels) / pixels, decoded / pixels, encoded / plain)


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
    encoded range on sides where it reaches the tile's edge), within that range. So the encoder skips what no
    routed region depends on; with `margin` the model's receptive field, every decoded pixel sees the same
    features as in a whole-image encode.
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
