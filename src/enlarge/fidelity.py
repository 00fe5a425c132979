"""Keeping an enlargement faithful where the model must not invent: alpha, faint colour, bilevel brightness.

A model trained on photographs sharpens edges, and sharpening rings: at a hard alpha edge it makes an opaque
disc dip to 234 just inside and a transparent background rise to 16 just outside. Dividing a premultiplied colour
by such a small, wrong alpha then turns noise into strong colour, which shows as a dark or coloured outline. What
the input says about alpha and about faint pixels is only its local range, so the output is kept inside it:

- **alpha** is clamped, per output pixel, to the minimum and maximum of the input alpha in its neighbourhood:
  the input pixels on either side of the output pixel's centre (`neighbourhood`). An edge stays an edge (every
  transition the input has is kept) but never overshoots, and a bilevel mask stays 0 and 255 away from its edges;
- **colour** is un-premultiplied by the model's own alpha (their ringing cancels) and then pulled into the range of
  the *visible* input colours (alpha above 0) of the same neighbourhood where alpha is low (fully below
  `FAINT_ALPHA`, handing over linearly up to `TRUSTED_ALPHA`) or within one input pixel of a hard alpha step
  (fully from `HARD_STEP`), where the model's two passes ring differently; elsewhere the model's colour is kept: there alpha is smooth and large enough to
  carry the detail the model made.

- **bilevel images** (every sample 0 or 1: a 1-bit PNG, line art, a dithered picture) are far from the photos the
  model learnt from: on a dither it rings past black and white unevenly and clamping the ringing shifts the
  brightness (a dithered 46 % gray came out 50–52 %). `keep_local_mean` back-projects the enlargement onto the
  input: the box average of the output over each input pixel is pulled to that pixel's value
  (`BACK_PROJECTION_STEPS` rounds of iterative back-projection, Irani & Peleg), so the brightness that a dither
  encodes in its local density is kept.

Ranges are taken over the input pixels whose centres bracket the output pixel's centre, per axis in exact integer
arithmetic (two pixels when enlarging, one where the centres coincide); on an axis that shrinks, the window also
covers the output pixel's footprint.
"""

from __future__ import annotations

import numpy as np

from PIL import Image

from enlarge.pixels import MAX_8_BIT, resample

# Below this alpha the colour is clamped to its visible neighbourhood; above TRUSTED_ALPHA it is the model's own.
FAINT_ALPHA = 32 / MAX_8_BIT
TRUSTED_ALPHA = 128 / MAX_8_BIT
# An alpha step this large across a neighbourhood is a hard edge: colour there is pulled fully into its range.
HARD_STEP = 0.25
INVISIBLE_ALPHA = 0.5 / MAX_8_BIT  # below half an 8-bit step a pixel is invisible: its colour is set to 0
# Rounds of back-projection for bilevel images: each halves to thirds the box-average error left by clamping;
# six bring a dithered image's mean within bicubic's own drift (under 0.01).
BACK_PROJECTION_STEPS = 6


def neighbourhood(length_in: int, length_out: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output index along an axis, the first and last input index of its neighbourhood (inclusive).

    The output centre lies at `(i + 1/2) · n / N` input pixels; the window runs from the input centre at or
    before it to the one at or after it, widened by the output pixel's footprint when it is wider than one input
    pixel. Integer arithmetic: `num / den` is the centre minus one half, `extra / den` the widening.
    """
    n, big_n = length_in, length_out
    i = np.arange(big_n, dtype=np.int64)
    num, den = (2 * i + 1) * n - big_n, 2 * big_n
    extra = max(0, n - big_n)
    first = (num - extra) // den
    last = -((-(num + extra)) // den)
    return np.clip(first, 0, n - 1), np.clip(last, 0, n - 1)


def local_range(values: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum of h×w×c `values` over each output pixel's neighbourhood, as H×W×c arrays.

    Separable: columns first (h×W×c), then rows. NaN entries are ignored (a window of only NaN stays NaN).
    """
    rows = neighbourhood(values.shape[0], size_hw[0])
    cols = neighbourhood(values.shape[1], size_hw[1])
    lo = _window_reduce(_window_reduce(values, cols, 1, np.fmin), rows, 0, np.fmin)
    hi = _window_reduce(_window_reduce(values, cols, 1, np.fmax), rows, 0, np.fmax)
    return lo, hi


def _window_reduce(values: np.ndarray, window: tuple[np.ndarray, np.ndarray], axis: int, op: np.ufunc) -> np.ndarray:
    """`op` over each window `[first, last]` of `values` along `axis`, one gather per offset in the window."""
    first, last = window
    out = np.take(values, first, axis=axis)
    for offset in range(1, int((last - first).max(initial=0)) + 1):
        out = op(out, np.take(values, np.minimum(first + offset, last), axis=axis))
    return out


def faithful_alpha(alpha_in: np.ndarray, alpha_out: np.ndarray) -> np.ndarray:
    """The enlarged alpha (H×W×1) clamped to the input alpha's local range: no ringing, no overshoot."""
    lo, hi = local_range(alpha_in, alpha_out.shape[:2])
    return np.clip(alpha_out, lo, hi)


def unpremultiply(
    colour_in: np.ndarray, alpha_in: np.ndarray, premultiplied_out: np.ndarray, model_alpha: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Straight colour and faithful alpha from the model's premultiplied colour and its own enlarged alpha.

    `colour_in` is the input's straight colour (h×w×c) and `alpha_in` its alpha (h×w×1). The colour is divided
    by the model's alpha, whose ringing matches that of the premultiplied colour, so the two cancel; the alpha
    written is `faithful_alpha`. Invisible pixels get colour 0; faint pixels, and pixels across a hard alpha step,
    are pulled into the range of the visible input colours around them.
    """
    alpha_lo, alpha_hi = local_range(alpha_in, model_alpha.shape[:2])
    alpha = np.clip(model_alpha, alpha_lo, alpha_hi)
    divisor = np.maximum(model_alpha, INVISIBLE_ALPHA)
    colour = np.clip(np.clip(premultiplied_out, 0.0, None) / divisor, 0.0, 1.0)
    trust = np.clip((alpha - FAINT_ALPHA) / (TRUSTED_ALPHA - FAINT_ALPHA), 0.0, 1.0)
    _, step = local_range(_steps(alpha_in), model_alpha.shape[:2])
    pull = np.maximum(1.0 - trust, np.clip(step / HARD_STEP, 0.0, 1.0))
    if pull.any():
        seen = np.where(alpha_in > 0.0, colour_in, np.nan)  # the colour under a transparent pixel is no information
        lo, hi = local_range(seen, model_alpha.shape[:2])
        clamped = np.where(np.isnan(lo), colour, np.clip(colour, lo, hi))  # no visible neighbour: alpha is 0 too
        colour = (1.0 - pull) * colour + pull * clamped
    colour = np.where(alpha >= INVISIBLE_ALPHA, colour, 0.0)
    return colour.astype(np.float32), alpha.astype(np.float32)


def _steps(alpha: np.ndarray) -> np.ndarray:
    """Per input pixel, how much alpha changes within one pixel of it (3×3 range): where the model may ring."""
    padded = np.pad(alpha, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = alpha.shape[:2]
    shifted = [padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    return np.max(shifted, axis=0) - np.min(shifted, axis=0)


def is_bilevel(pixels: np.ndarray) -> bool:
    """Whether every sample is exactly 0 or 1 (black and white only), as in a 1-bit image."""
    return bool(np.all((pixels == 0.0) | (pixels == 1.0)))


def keep_local_mean(pixels_in: np.ndarray, enlarged: np.ndarray) -> np.ndarray:
    """`enlarged` (H×W×c, in [0, 1]) corrected so that its box average over each input pixel matches `pixels_in`.

    Iterative back-projection with a box filter both ways: the error of the box-reduced output is spread back
    over each input pixel's footprint and the result clamped to [0, 1], `BACK_PROJECTION_STEPS` times.
    """
    in_size = (pixels_in.shape[1], pixels_in.shape[0])
    out_size = (enlarged.shape[1], enlarged.shape[0])
    out = enlarged
    for _ in range(BACK_PROJECTION_STEPS):
        error = pixels_in - resample(out, in_size, Image.Resampling.BOX)
        out = np.clip(out + resample(error, out_size, Image.Resampling.BOX), 0.0, 1.0)
    return out.astype(np.float32)
