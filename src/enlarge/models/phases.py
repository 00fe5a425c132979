"""Periodic output grids: at a rational scale p/q every p output pixels along an axis repeat the same offsets
to their LR neighbours, shifted by q LR pixels.

`axis_phases` recognises such an axis from its coordinates and describes it exactly (integer arithmetic on the
lattice of half-output-pixels), so a decoder can run each phase as dense slices of the LR feature map instead of
gathering one feature row per output pixel. Only the regular block is described: output pixels near the edges,
whose neighbours would fall outside the map and get clamped (with different offsets), are left to the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

# Largest period p (output pixels) and step q (LR pixels) with a dense path: p² phases per tile; beyond this the
# phases are too many and too small to pay for their per-call overhead.
MAX_PERIOD = 16
# How far (in LR pixels) float32 coordinates may stray from the exact lattice and still count as on it: above
# their rounding (up to a few 1e-4 px once mapped into a tile of a 4000-pixel image) and far below the drift of a
# grid of integer sizes whose scale is not p/q (over a tile of hundreds of pixels, ≥ 1e-2 px). A short grid (a
# few pixels) accepted within it is decoded at positions at most this far from its own: the same order as that
# rounding, which the point query carries too.
LATTICE_TOLERANCE = 1e-3
SHIFTS = (-1, 1)  # the ensemble's two neighbours per axis, in `axis_neighbours` order


@dataclass(frozen=True)
class Phase:
    """Output pixels `start`, `start + period`, … (`count` of them) of a periodic axis.

    `cells[v]`: the LR cell of the first of them for shift `SHIFTS[v]` (the k-th one's is `cells[v] + k·step`);
    `offsets[v]`: their common offset from that cell's centre, in LIIF's units (`axis_neighbours`' second value).
    """

    start: int
    count: int
    cells: tuple[int, ...]
    offsets: tuple[float, ...]


@dataclass(frozen=True)
class AxisPhases:
    """The regular block `[lo, hi)` of a periodic axis: `period` output pixels advance `step` LR cells."""

    period: int
    step: int
    lo: int
    hi: int
    phases: tuple[Phase, ...]


def axis_phases(coords: torch.Tensor, n: int) -> AxisPhases | None:
    """The phases of output pixel centres `coords` ([-1, 1], ascending) over an axis of `n` LR cells, or None
    when they are not a lattice of period ≤ MAX_PERIOD or hold less than one whole period away from the edges.

    Positions are in units of 1/(2p) LR pixels, where the centres of a p/q grid are integers `a + 2q·i`; the
    neighbour cells for shifts ∓1 are then `(X ∓ p) // 2p` (ties go to the upper cell, as LIIF's nudge does).
    """
    m = len(coords)
    if m < 2:
        return None
    pos = (coords.detach().double().cpu() + 1) / 2 * n  # LR pixels from the axis start
    step = Fraction(float(pos[-1] - pos[0]) / (m - 1)).limit_denominator(MAX_PERIOD)
    q, p = step.numerator, step.denominator
    if not 0 < q <= MAX_PERIOD:
        return None
    a = round(float(pos[0]) * 2 * p)
    lattice = (a + 2 * q * torch.arange(m, dtype=torch.float64)) / (2 * p)
    if float((pos - lattice).abs().max()) > LATTICE_TOLERANCE:
        return None
    # regular: the lower neighbour (X - p)//2p ≥ 0 and the upper one (X + p)//2p ≤ n - 1
    lo = max(0, math.ceil((p - a) / (2 * q)))
    hi = min(m, math.ceil((2 * p * n - p - a) / (2 * q)))
    if hi - lo < p:
        return None
    phases = []
    for r in range(p):
        x = a + 2 * q * (lo + r)
        cells = tuple((x + v * p) // (2 * p) for v in SHIFTS)
        offsets = tuple((x - 2 * p * c - p) / p for c in cells)  # 2·(x/2p − c − ½)
        phases.append(Phase(lo + r, len(range(lo + r, hi, p)), cells, offsets))
    return AxisPhases(p, q, lo, hi, tuple(phases))


@dataclass(frozen=True)
class CentredBlock:
    """Output pixels `[start, start + periods·period)` of an integer-scale axis, whole periods between LR cell
    centres: the k-th period's pixels all lie between the centres of cells `first + k` and `first + k + 1`, which
    are their two neighbours for every phase, so each phase's neighbours are the same shifted run of cells.

    `offsets[r]`: the pixels `start + r`, `start + r + period`, …'s offsets to their lower and upper cell.
    """

    period: int
    start: int
    periods: int
    first: int
    offsets: tuple[tuple[float, ...], ...]

    def span(self) -> slice:
        """The block's output pixels."""
        return slice(self.start, self.start + self.periods * self.period)

    def cells(self, periods: slice | None = None) -> torch.Tensor:
        """The LR cells (int64) that the block's periods (all, or the slice `periods` of them) lie between."""
        lo, hi, _ = (periods or slice(None)).indices(self.periods)
        return torch.arange(self.first + lo, self.first + hi + 1)

    def offset_table(self) -> torch.Tensor:
        """`offsets` as a period×2 float32 tensor."""
        return torch.tensor(self.offsets, dtype=torch.float32)


def centred_block(axis: AxisPhases) -> CentredBlock | None:
    """The whole periods of `axis`' regular block between LR cell centres, or None when the axis is not of an
    integer scale (a step of one LR cell per period) or holds no whole such period.

    The regular block starts at any phase; its first pixel whose lower cell is one further on starts the
    centred block (or the block's own first pixel, when every phase shares its lower cell).
    """
    if axis.step != 1:
        return None
    p = axis.period
    base = axis.phases[0].cells[0]
    turn = next((r for r, ph in enumerate(axis.phases) if ph.cells[0] != base), p)
    start = axis.lo + turn % p
    periods = (axis.hi - start) // p
    if periods < 1:
        return None
    phases = [axis.phases[(turn + r) % p] for r in range(p)]
    return CentredBlock(p, start, periods, base + int(turn < p), tuple(ph.offsets for ph in phases))
