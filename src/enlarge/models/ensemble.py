"""LIIF's local ensemble: the four LR feature cells around a query, its offset to each, and their blend weights.

Both the reference LIIF decoder and the light decoders use these helpers, so every model shares one
definition of "nearest feature" and "diagonally opposite area".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from enlarge.errors import ModelError
from enlarge.models.folded import FoldedHead, affine_layers, fold, folded_block
from enlarge.models.phases import AxisPhases, axis_phases

# The official code nudges queries off cell borders by this much and clamps inside (-1, 1) by the same margin.
EPS_SHIFT = 1e-6
# Added to every area so a query exactly on a feature centre still has non-zero weights.
AREA_EPS = 1e-9
# (vy, vx) shifts of the four neighbours, in the official loop order (vx outer = y axis, vy inner = x axis).
SHIFTS = ((-1, -1), (-1, 1), (1, -1), (1, 1))
# The same four as (y shift, x shift) positions in each axis' pair of shifts (−1 → 0, +1 → 1).
SHIFT_INDICES = tuple(((vy + 1) // 2, (vx + 1) // 2) for vy, vx in SHIFTS)
# Grid chunks of pre-activations a phase band holds: its dense products run faster on more rows (x2..x8 decoder 0.85-0.92x the
# time at 2, no gain at 4; interleaved A/B on the 2-core AVX2 CPU, 11 rounds)
PHASE_BAND_CHUNKS = 2


@dataclass
class Neighbour:
    """One of the four feature cells around each query."""

    index: torch.Tensor  # B×Q long: flat index y*w + x into the h×w feature map
    rel_coord: torch.Tensor  # B×Q×2: query minus the cell centre, in units of one LR pixel's half-size ×2 (as LIIF)


def axis_neighbours(c: torch.Tensor, n: int, ensemble: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Along one axis: for each shift (−1, +1, or 0 without the ensemble), the nearest cell index and the
    query's offset from that cell's centre in cell half-widths ×2 (LIIF's scaling by the feature size).

    Index arithmetic equivalent to the official `grid_sample(mode='nearest')` on shifted, clamped coordinates.
    """
    radius = 1.0 / n  # half a feature cell in coordinate units
    shifts, eps = ((-1, 1), EPS_SHIFT) if ensemble else ((0,), 0.0)
    out = []
    for v in shifts:
        shifted = (c + (v * radius + eps)).clamp(-1 + EPS_SHIFT, 1 - EPS_SHIFT)
        # cell index = round((c + 1)/2 · n − 0.5), i.e. floor((c + 1)/2 · n) away from exact ties
        index = torch.floor((shifted + 1) / 2 * n).long().clamp_(min=0)
        index = torch.where(index < n, index, n - 1)  # not clamp_(max=n - 1): a trace would bake n in
        centre = -1 + (2 * index.to(c.dtype) + 1) / n
        out.append((index, (c - centre) * n))
    return out


def neighbours(coord: torch.Tensor, feat_hw: tuple[int, int], ensemble: bool = True) -> list[Neighbour]:
    """The four nearest feature cells of each query (or the one nearest, without the ensemble), in SHIFTS order.

    `coord`: B×Q×2 (y, x) in [-1, 1]; built from `axis_neighbours` so grid and point queries agree exactly.
    """
    h, w = feat_hw
    along_y = axis_neighbours(coord[..., 0], h, ensemble)
    along_x = axis_neighbours(coord[..., 1], w, ensemble)
    return [
        Neighbour(index=iy * w + ix, rel_coord=torch.stack([ry, rx], dim=-1))
        for iy, ry in along_y
        for ix, rx in along_x
    ]


def times_size(v: torch.Tensor, h: int | torch.Tensor, w: int | torch.Tensor) -> torch.Tensor:
    """`v` (…×2, (y, x)) times the feature size (h, w), per axis, so that an ONNX trace keeps h and w symbolic
    (a size tensor built with `new_tensor([h, w])` would be baked into the graph as a constant)."""
    return torch.cat([v[..., :1] * h, v[..., 1:] * w], dim=-1)


def ensemble_weights(rel_coords: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each neighbour's weight: the area of the rectangle to the diagonally opposite neighbour, normalised."""
    areas = [torch.abs(r[..., 0] * r[..., 1]) + AREA_EPS for r in rel_coords]
    total = torch.stack(areas).sum(dim=0)
    opposite = areas[::-1]  # SHIFTS order makes index 3 − i the diagonal opposite of i
    return [a / total for a in opposite]


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`table` B×N×C, `index` B×Q → B×Q×C: row `index[b, q]` of batch `b`."""
    return torch.gather(table, 1, index.unsqueeze(-1).expand(-1, -1, table.shape[-1]))


def grid_weights(abs_y: list[torch.Tensor], abs_x: list[torch.Tensor]) -> list[torch.Tensor]:
    """`ensemble_weights` on a rows × columns grid from each shift's absolute row and column offsets, in SHIFTS
    order: the same values as the point form (|ry·rx| = |ry|·|rx| exactly, and the same sum)."""
    areas = [torch.outer(ay, ax) + AREA_EPS for ay in abs_y for ax in abs_x]
    total = torch.stack(areas).sum(dim=0)
    return [a / total for a in areas[::-1]]


def row_chunks(rows: int, cols: int, queries: int) -> Iterator[slice]:
    """Consecutive row slices of a rows × cols grid holding about `queries` pixels each (at least one row)."""
    step = max(1, queries // max(cols, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def decode_band(
    rows_of: Callable[[torch.Tensor], torch.Tensor],
    rows: list[tuple[torch.Tensor, torch.Tensor]],
    columns: list[tuple[torch.Tensor, torch.Tensor]],
    weights: list[torch.Tensor] | None,
    row_weight: torch.Tensor,
    constant: torch.Tensor,
    head: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """One band of output rows of `decode_grid` → rows × columns × channels (the head's output width).

    `rows_of(iy)`: the first layer's feature part at LR rows `iy`, R×w×C (a fresh tensor: it is added to in
    place); `rows`: per y shift, the band's cell indices and offsets (`axis_neighbours` sliced to the band);
    `columns`: per x shift, the cell indices and the column term `outer(rx, col_weight)`; `weights`: the band's
    ensemble weights in SHIFTS order (None without the ensemble).
    """

    def predict(pair: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        (iy, ry), (ix, col_term) = pair
        pre = rows_of(iy)
        pre += (torch.outer(ry, row_weight) + constant).unsqueeze(1)
        pre = pre.index_select(1, ix)
        pre += col_term
        return head(pre.view(-1, pre.shape[-1])).view(pre.shape[0], pre.shape[1], -1)

    first, *others = [(a, b) for a in rows for b in columns]
    if weights is None:  # no ensemble: one neighbour
        return predict(first)
    acc = predict(first) * weights[0].unsqueeze(-1)
    for pair, weight in zip(others, weights[1:]):
        acc.addcmul_(predict(pair), weight.unsqueeze(-1))
    return acc


def channels_last_table(features: torch.Tensor) -> torch.Tensor:
    """The C×h×w feature part as an h×w×C table: one copy, none when `features` is a channels-last view."""
    return features.permute(1, 2, 0).contiguous()


@dataclass(frozen=True)
class SplitLayer:
    """A split-first-layer implicit decoder: the first layer's coordinate terms and the rest of the network.

    The first layer's pre-activation for a neighbour is its feature part at the LR cell plus
    `ry·row_weight + rx·col_weight + constant`; `head` maps N×C pre-activations to N×`channels` (the first layer's
    activation included; it may work in place). A head that is a module of only ReLUs and Linears
    (`folded.affine_layers`) is not called on the phase-dense path: its parameters take the geometry and the blend.
    """

    row_weight: torch.Tensor
    col_weight: torch.Tensor
    constant: torch.Tensor
    head: Callable[[torch.Tensor], torch.Tensor]
    channels: int


def decode_grid(
    features: torch.Tensor,
    ys: torch.Tensor,
    xs: torch.Tensor,
    row_weight: torch.Tensor,
    col_weight: torch.Tensor,
    constant: torch.Tensor,
    head: Callable[[torch.Tensor], torch.Tensor],
    channels: int,
    chunk: int,
    ensemble: bool = True,
) -> torch.Tensor:
    """A split-first-layer implicit decoder on the grid `ys` × `xs` → 1×channels×len(ys)×len(xs), float32.

    `features` (C×h×w) is the first layer's feature part at every LR position; for each neighbour the layer's
    pre-activation is `features[:, iy, ix] + ry·row_weight + rx·col_weight + constant` (`SplitLayer`), and the
    neighbours are blended with the ensemble's area weights. Where both axes are periodic (a rational scale with
    a small period, `phases.axis_phases`) the regular block runs phase by phase on dense slices of the feature map
    (`decode_phases`) and only the border strips, whose neighbours are clamped, take the general path; otherwise
    every row band gathers at LR width and then by column (`decode_band`), so no per-pixel coordinate or
    unfolded feature is ever made. Work goes about `chunk` pixels at a time, so the intermediates stay in cache;
    under an ONNX trace the whole grid is one band in the cross-product form (`decode_cross`; whoever runs the
    graph passes it bands of rows instead).
    """
    layer = SplitLayer(row_weight, col_weight, constant, head, channels)
    if torch.jit.is_tracing():  # len(ys) would be baked into the graph
        return decode_cross(features, ys, xs, layer, ensemble)
    table = channels_last_table(features)
    out = torch.empty(1, channels, len(ys), len(xs), dtype=ys.dtype, device=features.device)
    h, w = table.shape[:2]
    along_y = axis_phases(ys, h) if ensemble else None
    along_x = axis_phases(xs, w) if ensemble and along_y is not None else None
    if along_y is None or along_x is None:
        strips = [(slice(None), slice(None))]
    else:
        decode_phases(table, along_y, along_x, layer, out, chunk)
        inner_rows = slice(along_y.lo, along_y.hi)
        strips = [(slice(0, along_y.lo), slice(None)), (slice(along_y.hi, None), slice(None)),
                  (inner_rows, slice(0, along_x.lo)), (inner_rows, slice(along_x.hi, None))]
    for rows, cols in strips:
        if len(ys[rows]) and len(xs[cols]):
            out[0, :, rows, cols] = decode_bands(table, ys[rows], xs[cols], layer, ensemble, chunk)
    return out


def decode_bands(
    table: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, layer: SplitLayer, ensemble: bool, chunk: int
) -> torch.Tensor:
    """The general grid path on `ys` × `xs` → channels×len(ys)×len(xs), bands of about `chunk` pixels.

    `table`: the h×w×C feature part; rows are gathered only over the columns that `xs` reaches, which for a
    border strip is a few.
    """
    h, w = table.shape[:2]
    along_y = axis_neighbours(ys, h, ensemble)
    along_x = axis_neighbours(xs, w, ensemble)
    first = min(int(ix.min()) for ix, _ in along_x)
    window = table[:, first : max(int(ix.max()) for ix, _ in along_x) + 1]
    columns = [(ix - first, torch.outer(rx, layer.col_weight)) for ix, rx in along_x]  # shared by every band
    abs_y, abs_x = [ry.abs() for _, ry in along_y], [rx.abs() for _, rx in along_x]

    def rows_of(iy: torch.Tensor) -> torch.Tensor:
        return window.index_select(0, iy)

    out = torch.empty(layer.channels, len(ys), len(xs), dtype=ys.dtype, device=ys.device)
    for rows in row_chunks(len(ys), len(xs), chunk):
        weights = grid_weights([a[rows] for a in abs_y], abs_x) if ensemble else None
        band = decode_band(rows_of, [(iy[rows], ry[rows]) for iy, ry in along_y], columns, weights,
                           layer.row_weight, layer.constant, layer.head)
        out[:, rows] = band.permute(2, 0, 1)
    return out


def decode_cross(
    features: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, layer: SplitLayer, ensemble: bool
) -> torch.Tensor:
    """`decode_grid` in the form an ONNX trace takes → 1×channels×len(ys)×len(xs): the pre-activations of all
    neighbours at once, as the cross product of every (y shift, row) with every (x shift, column).

    Each neighbour of pixel (i, j) is one (y shift, x shift) pair, so gathering the C×h×w `features` by the
    stacked row indices and then by the stacked column indices lays out exactly the 4·R·W pre-activations the
    ensemble needs, in one tensor; the head then runs once over all of them (onnxruntime pays per op, and four
    separate passes cost it about 1.7× the time of PyTorch's decoder), and the blend is a reshape and a sum. No
    size comes from a Python int, so rows, columns, h and w stay symbolic.
    """
    h, w = features.shape[-2:]
    along_y = axis_neighbours(ys, h, ensemble)
    along_x = axis_neighbours(xs, w, ensemble)
    ry, rx = torch.cat([r for _, r in along_y]), torch.cat([r for _, r in along_x])
    pre = features.index_select(1, torch.cat([i for i, _ in along_y])).permute(1, 2, 0)  # (shifts·R)×w×C
    pre = pre + (torch.outer(ry, layer.row_weight) + layer.constant).unsqueeze(1)
    pre = pre.index_select(1, torch.cat([i for i, _ in along_x])) + torch.outer(rx, layer.col_weight)
    shape = (len(along_y), ys.shape[0], len(along_x), xs.shape[0], -1)
    pred = layer.head(pre.reshape(-1, pre.shape[-1])).view(shape)  # y shift, row, x shift, column, channel
    if not ensemble:
        return pred[0, :, 0].permute(2, 0, 1).unsqueeze(0)
    areas = ry.abs().view(len(along_y), -1, 1, 1) * rx.abs().view(1, 1, len(along_x), -1) + AREA_EPS
    weights = areas.flip(0).flip(2) / areas.sum((0, 2), keepdim=True)  # the diagonally opposite area
    return (pred * weights.unsqueeze(-1)).sum((0, 2)).permute(2, 0, 1).unsqueeze(0)


def decode_phases(
    table: torch.Tensor, along_y: AxisPhases, along_x: AxisPhases, layer: SplitLayer, out: torch.Tensor, chunk: int
) -> None:
    """The regular block of a periodic grid into `out` (1×channels×H×W), phase by phase: for each row phase ×
    column phase the four neighbours' inputs are strided slices of the h×w×C `table` plus one geometry vector
    each, so the head runs as dense matrix products; their blend weights are constants, and the result lands in
    every period-th output pixel (a pixel-shuffle-like interleave). A head of ReLUs and Linears takes both the
    geometry and the blend into its parameters (`folded.fold`), once per phase pair. Bands of phase rows keep
    about PHASE_BAND_CHUNKS·`chunk` pre-activations (all four neighbours together) in flight."""
    row_terms = torch.stack([torch.stack([ry * layer.row_weight + layer.constant for ry in ph.offsets])
                             for ph in along_y.phases])  # Py×2×C
    col_terms = torch.stack([torch.stack([rx * layer.col_weight for rx in ph.offsets]) for ph in along_x.phases])
    # every phase pair's geometry vectors, Py×2×Px×2×C, in the table's precision (a mixed-precision add is slow)
    geometry = (row_terms[:, :, None, None] + col_terms[None, None]).to(table.dtype)
    abs_y = row_terms.new_tensor([[abs(v) for v in ph.offsets] for ph in along_y.phases]).unbind(-1)
    abs_x = row_terms.new_tensor([[abs(v) for v in ph.offsets] for ph in along_x.phases]).unbind(-1)
    blend = torch.stack(grid_weights(list(abs_y), list(abs_x)), dim=-1)  # Py×Px×4, SHIFTS order
    # per phase pair, the four neighbours' geometry vectors in SHIFTS order
    offsets = torch.stack([geometry[:, vy, :, vx] for vy, vx in SHIFT_INDICES], dim=2)  # Py×Px×4×C
    layers = affine_layers(layer.head)
    folded = None if layers is None else [[fold(layers, offsets[r, c].float(), blend[r, c], table.dtype)
                                           for c in range(len(along_x.phases))] for r in range(len(along_y.phases))]
    width = max(ph.count for ph in along_x.phases)
    band_rows = max(1, PHASE_BAND_CHUNKS * chunk // (len(SHIFTS) * width))
    sy, sx = along_y.step, along_x.step
    for k0 in range(0, along_y.phases[0].count, band_rows):
        for r, py in enumerate(along_y.phases):
            rows = min(py.count, k0 + band_rows) - k0
            if rows <= 0:
                continue
            for c, px in enumerate(along_x.phases):
                head = None if folded is None else folded[r][c]
                pre = table.new_empty(len(SHIFTS), rows, px.count, table.shape[-1])
                for n, (vy, vx) in enumerate(SHIFT_INDICES):
                    y0, x0 = py.cells[vy] + k0 * sy, px.cells[vx]
                    window = table[y0 : y0 + (rows - 1) * sy + 1 : sy, x0 : x0 + (px.count - 1) * sx + 1 : sx]
                    head_input(window, offsets[r, c], n, head, pre[n])
                if head is None:
                    pred = layer.head(pre.view(-1, pre.shape[-1])).view(len(SHIFTS), -1).float()
                    mixed = (pred * blend[r, c].unsqueeze(-1)).sum(0).view(rows * px.count, -1).t()
                else:
                    mixed = head(pre.view(len(SHIFTS), -1, pre.shape[-1]))  # channels first
                start = py.start + k0 * along_y.period
                target = out[0, :, start : start + (rows - 1) * along_y.period + 1 : along_y.period,
                             px.start : px.start + (px.count - 1) * along_x.period + 1 : along_x.period]
                target.copy_(mixed.reshape(-1, rows, px.count))


def decode_block(
    features: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    row_offsets: torch.Tensor,
    col_offsets: torch.Tensor,
    layer: SplitLayer,
) -> torch.Tensor:
    """A centred block of an integer-scale grid (`phases.centred_block`), phase-densely and in the form an ONNX
    trace takes → 1×channels×(R·P)×(W·Q).

    `rows` (R + 1) and `cols` (W + 1): the LR cells the block spans, in order; output pixel (k·P + r, j·Q + c)
    lies between the centres of cells `rows[k]`, `rows[k + 1]` and `cols[j]`, `cols[j + 1]`, which are its four
    neighbours for every phase, at the offsets `row_offsets[r]` (P×2: to the lower and upper cell) and
    `col_offsets[c]` (Q×2). So each neighbour's features are one shifted window of the cells, shared by every
    phase pair, each phase pair adds constant geometry vectors and blends with constant weights, and the head
    (one of ReLUs and Linears) runs folded over all of them at once (`folded.folded_block`); the phases are
    interleaved by a reshape. No size comes from a Python int, so every size stays symbolic.
    """
    layers = affine_layers(layer.head)
    if layers is None:
        raise ModelError("the phase-dense block needs a head of ReLUs and Linears")
    table = features.index_select(1, rows).index_select(2, cols).permute(1, 2, 0)  # (R+1)×(W+1)×C
    lower_upper = (slice(None, -1), slice(1, None))
    windows = torch.stack([table[lower_upper[vy], lower_upper[vx]] for vy, vx in SHIFT_INDICES], dim=2)  # R×W×4×C
    row_terms = row_offsets.unsqueeze(-1) * layer.row_weight + layer.constant  # P×2×C
    col_terms = col_offsets.unsqueeze(-1) * layer.col_weight  # Q×2×C
    geometry = torch.stack([row_terms[:, vy, None] + col_terms[None, :, vx] for vy, vx in SHIFT_INDICES], dim=2)
    blend = torch.stack(grid_weights(list(row_offsets.abs().unbind(-1)), list(col_offsets.abs().unbind(-1))), dim=-1)
    pred = folded_block(layers, windows.flatten(0, 1), geometry, blend)  # P×Q×(R·W)×channels
    pred = pred.unflatten(2, windows.shape[:2]).permute(4, 2, 0, 3, 1)  # channels×R×P×W×Q
    return pred.flatten(3, 4).flatten(1, 2).unsqueeze(0)


def head_input(
    window: torch.Tensor, geometry: torch.Tensor, n: int, head: FoldedHead | None, pre: torch.Tensor
) -> None:
    """Neighbour `n`'s head input into `pre`: its feature `window` plus its row of `geometry`, or what a folded
    `head` takes instead (its leading ReLU applied, the geometry left to its parameters)."""
    if head is None:
        torch.add(window, geometry[n], out=pre)
    elif head.entry is None:
        pre.copy_(window)
    else:
        torch.maximum(window, head.entry[n], out=pre)
