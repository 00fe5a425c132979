"""Alpha without ringing and faint pixels without invented colour (fidelity.py), through the Upscaler.

The checks are independent of the clamp's own window: overshoot and colour are measured against the 3×3 input
neighbourhood of the input pixel under each output pixel's centre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import maximum_filter, minimum_filter

from enlarge.fidelity import faithful_alpha, is_bilevel, keep_local_mean, local_range, neighbourhood
from enlarge.imageio import DecodedImage, read_image
from enlarge.models.registry import LoadedModel, build, describe
from enlarge.sizing import SizeRequest
from enlarge.upscaler import DEFAULT_MODEL, Upscaler

LEVELS = 255
ONE_LEVEL = 1 / LEVELS
GREY = 0.7
TRUSTED_LEVELS = 128
SIDE = 40
MAX_OVERSHOOT_LEVELS = 2  # issue 19's targets
MAX_FAINT_BLEED_LEVELS = 16
FAINT_LEVELS = 32
SCALES = (2.0, 3.0, 4.0)
RINGING_CONFIG = {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]}


def ringing_model() -> LoadedModel:
    """A random-weight lite: its residual rings hard at every edge, the worst case for alpha."""
    torch.manual_seed(3)
    module = build("lite", RINGING_CONFIG).eval()
    return LoadedModel(module, describe("ringing", "lite", RINGING_CONFIG, module, has_weights=False))


@pytest.fixture(scope="module", params=["shipped", "ringing"])
def upscaler(request: pytest.FixtureRequest) -> Upscaler:
    return Upscaler(DEFAULT_MODEL if request.param == "shipped" else ringing_model())


def hard_circle(seed: int = 0) -> np.ndarray:
    """RGBA: a colour ramp inside a hard circular mask, random colour under the transparent outside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    inside = (yy - SIDE / 2 + 0.5) ** 2 + (xx - SIDE / 2 + 0.5) ** 2 <= (SIDE * 0.35) ** 2
    colour = np.stack([0.3 + 0.5 * xx / SIDE, np.full((SIDE, SIDE), 0.8), 0.2 + 0.6 * yy / SIDE], -1)
    colour[~inside] = rng.random((int((~inside).sum()), 3))
    return np.concatenate([colour, inside[..., None]], -1).astype(np.float32)


def line_and_ramp() -> np.ndarray:
    """One grey under a one-pixel opaque vertical line, with a horizontal alpha ramp across the top quarter."""
    pixels = np.zeros((SIDE, SIDE, 4), np.float32)
    pixels[..., :3] = GREY
    pixels[:, SIDE // 2, 3] = 1.0
    pixels[: SIDE // 4, :, 3] = np.linspace(0.0, 1.0, SIDE, dtype=np.float32)
    return pixels


def under_centres(length_in: int, length_out: int) -> np.ndarray:
    return np.minimum(((np.arange(length_out) + 0.5) * length_in / length_out).astype(int), length_in - 1)


def around(plane: np.ndarray, out_hw: tuple[int, int], reduce: object) -> np.ndarray:
    """`reduce` (minimum/maximum filter) over the 3×3 input pixels around the one under each output centre."""
    rows, cols = under_centres(plane.shape[0], out_hw[0]), under_centres(plane.shape[1], out_hw[1])
    return reduce(plane, size=3, mode="nearest")[np.ix_(rows, cols)]  # type: ignore[operator]


def enlarge(upscaler: Upscaler, pixels: np.ndarray, scale: float) -> np.ndarray:
    h, w = pixels.shape[:2]
    return upscaler.upscale_image(DecodedImage(pixels), SizeRequest(scale=scale).plan((w, h))).pixels


def alpha_overshoot(pixels: np.ndarray, out: np.ndarray) -> float:
    alpha, out_alpha = pixels[..., 3] * LEVELS, np.round(out[..., 3] * LEVELS)
    lo, hi = around(alpha, out.shape[:2], minimum_filter), around(alpha, out.shape[:2], maximum_filter)
    return float(np.maximum(out_alpha - hi, lo - out_alpha).max())


def faint_bleed(pixels: np.ndarray, out: np.ndarray) -> tuple[float, int]:
    """Largest distance (levels) of a faint output pixel's colour from its visible input neighbours' range."""
    visible = pixels[..., 3] > 0
    devs = []
    out_alpha = np.round(out[..., 3] * LEVELS)
    for c in range(3):
        channel = pixels[..., c] * LEVELS
        lo = around(np.where(visible, channel, np.inf), out.shape[:2], minimum_filter)
        hi = around(np.where(visible, channel, -np.inf), out.shape[:2], maximum_filter)
        value = out[..., c] * LEVELS
        devs.append(np.where(np.isfinite(lo), np.maximum(value - hi, lo - value), 0.0))
    faint = (out_alpha > 0) & (out_alpha < FAINT_LEVELS)
    return float(np.max(devs, axis=0)[faint].max(initial=0.0)), int(faint.sum())


@pytest.mark.parametrize("scale", SCALES)
def test_hard_mask_alpha_never_overshoots_and_faint_pixels_keep_neighbour_colours(
    upscaler: Upscaler, scale: float
) -> None:
    pixels = hard_circle()
    out = enlarge(upscaler, pixels, scale)
    assert alpha_overshoot(pixels, out) <= MAX_OVERSHOOT_LEVELS
    bleed, faint = faint_bleed(pixels, out)
    assert faint > 0  # the edge has faint pixels to check
    assert bleed <= MAX_FAINT_BLEED_LEVELS
    # away from the edge the mask stays bilevel: opaque inside, fully transparent with colour 0 outside
    inner = around(pixels[..., 3], out.shape[:2], minimum_filter) == 1.0
    outer = around(pixels[..., 3], out.shape[:2], maximum_filter) == 0.0
    assert np.all(out[..., 3][inner] == 1.0) and np.all(out[outer] == 0.0)


def test_the_model_does_ring_without_the_clamp() -> None:
    """The check above has teeth: the shipped model's raw alpha pass overshoots by far more than 2 levels."""
    upscaler = Upscaler(DEFAULT_MODEL)
    pixels = hard_circle()
    alpha = np.repeat(pixels[..., 3:], 3, axis=-1)
    raw = enlarge(upscaler, alpha, 3.0)
    fake = np.concatenate([raw, raw[..., :1]], -1)
    assert alpha_overshoot(pixels, fake) > 10 * MAX_OVERSHOOT_LEVELS


def test_bilevel_mask_keeps_the_brightness_of_its_colour(upscaler: Upscaler) -> None:
    pixels = hard_circle()
    out = enlarge(upscaler, pixels, 3.0)
    before = float((pixels[..., :3] * pixels[..., 3:]).mean())
    after = float((out[..., :3] * out[..., 3:]).mean())
    assert after == pytest.approx(before, rel=0.02)


def test_thin_line_and_gradient_alpha_stay_in_range(upscaler: Upscaler) -> None:
    pixels = line_and_ramp()
    out = enlarge(upscaler, pixels, 3.0)
    assert alpha_overshoot(pixels, out) <= MAX_OVERSHOOT_LEVELS
    assert out[SIDE * 3 // 4 * 3 :, SIDE // 2 * 3 + 1, 3].min() > 0.9  # the line is still there, opaque at its centre
    line = out[SIDE // 2 * 3 :, SIDE // 2 * 3 - 3 : SIDE // 2 * 3 + 6]
    visible = line[..., 3] > 0
    np.testing.assert_allclose(line[..., :3][visible], GREY, atol=ONE_LEVEL)  # near a hard step: its own colour


def test_one_colour_under_varying_alpha_stays_that_colour() -> None:
    """With the shipped model every well-visible pixel keeps the one colour: exactly near hard steps, and within
    the bleed budget on the smooth ramp, where the model's two passes (colour × alpha, alpha) are not exactly
    proportional because the network is not linear."""
    out = enlarge(Upscaler(DEFAULT_MODEL), line_and_ramp(), 3.0)
    visible = out[..., 3] > TRUSTED_LEVELS / LEVELS
    np.testing.assert_allclose(out[..., :3][visible], GREY, atol=MAX_FAINT_BLEED_LEVELS * ONE_LEVEL)


def test_opaque_rgba_colour_is_bit_for_bit_the_rgb_result(upscaler: Upscaler) -> None:
    rgb = np.random.default_rng(1).random((24, 20, 3), dtype=np.float32)
    opaque = np.concatenate([rgb, np.ones((24, 20, 1), np.float32)], -1)
    np.testing.assert_array_equal(enlarge(upscaler, opaque, 2.5)[..., :3], enlarge(upscaler, rgb, 2.5))


def test_neighbourhood_brackets_the_output_centre() -> None:
    first, last = neighbourhood(4, 8)  # ×2: centres at 0.25, 0.75, …: between input centres, or clamped at edges
    assert first.tolist() == [0, 0, 0, 1, 1, 2, 2, 3] and last.tolist() == [0, 1, 1, 2, 2, 3, 3, 3]
    first, last = neighbourhood(3, 9)  # ×3: every third output centre is an input centre: a window of one
    assert [(int(a), int(b)) for a, b in zip(first, last)][:5] == [(0, 0), (0, 0), (0, 1), (0, 1), (1, 1)]
    first, last = neighbourhood(8, 4)  # ×0.5: the window covers the output pixel's footprint
    assert first.tolist() == [0, 2, 4, 6] and last.tolist() == [1, 3, 5, 7]


def test_local_range_matches_a_direct_loop() -> None:
    values = np.random.default_rng(2).random((5, 7, 2), dtype=np.float32)
    lo, hi = local_range(values, (12, 3))
    rows, cols = neighbourhood(5, 12), neighbourhood(7, 3)
    for i in range(12):
        for j in range(3):
            window = values[rows[0][i] : rows[1][i] + 1, cols[0][j] : cols[1][j] + 1]
            np.testing.assert_array_equal(lo[i, j], window.min(axis=(0, 1)))
            np.testing.assert_array_equal(hi[i, j], window.max(axis=(0, 1)))
    alpha = values[..., :1]
    assert np.all(faithful_alpha(alpha, np.full((12, 3, 1), 2.0, np.float32)) == hi[..., :1])


DITHERED_GRAY = 117  # issue 19's case: a flat 46 % gray, Floyd–Steinberg dithered to 1 bit
MAX_BILEVEL_DRIFT = 0.01  # bicubic's own drift on these images is 0.003-0.009; the model's was 0.045-0.06


def dithered_pngs(folder: Path) -> list[Path]:
    """Two 1-bit PNGs: a dithered flat gray and a dithered ramp (a checkerboard-like texture and a gradient)."""
    flat = Image.fromarray(np.full((48, 64), DITHERED_GRAY, np.uint8))
    ramp = Image.fromarray(np.tile(np.linspace(0, LEVELS, 64), (48, 1)).astype(np.uint8))
    paths = [folder / "flat.png", folder / "ramp.png"]
    for image, path in zip((flat, ramp), paths):
        image.convert("1").save(path)
    return paths


@pytest.mark.parametrize("scale", (2.0, 3.0, 4.0))
def test_a_1_bit_image_keeps_its_mean_brightness(upscaler: Upscaler, tmp_path: Path, scale: float) -> None:
    for path in dithered_pngs(tmp_path):
        decoded = read_image(path)
        out = enlarge(upscaler, decoded.pixels, scale)
        assert out.shape[-1] == 1
        assert float(out.mean()) == pytest.approx(float(decoded.pixels.mean()), abs=MAX_BILEVEL_DRIFT)


def test_keep_local_mean_matches_each_input_pixel_at_an_integer_scale() -> None:
    """Back-projection onto a bilevel input: each input pixel's 2×2 footprint averages close to its value."""
    rng = np.random.default_rng(1)
    pixels = (rng.random((16, 16, 1)) < 0.5).astype(np.float32)
    biased = np.clip(np.kron(pixels, np.ones((2, 2, 1), np.float32)) + 0.3, 0.0, 1.0)
    out = keep_local_mean(pixels, biased)
    before = np.abs(biased.reshape(16, 2, 16, 2, 1).mean(axis=(1, 3)) - pixels).max()
    after = np.abs(out.reshape(16, 2, 16, 2, 1).mean(axis=(1, 3)) - pixels).max()
    assert is_bilevel(pixels) and not is_bilevel(biased)
    assert after < before / 10
