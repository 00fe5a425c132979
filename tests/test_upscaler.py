"""The Upscaler: alpha without halos, gray stays gray, 16 bits and metadata carried, tiles invisible, shrinking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import enlarge
from enlarge.errors import EnlargeError, OutputError
from enlarge.imageio import DecodedImage, read_image, write_image
from enlarge.models.registry import LoadedModel, build, describe
from enlarge.sizing import SizeRequest
from enlarge.catalogue import list_models
from enlarge.devices import resolve_device
from enlarge.engine.tiling import MIN_TILE
from enlarge.paths import expand_inputs, output_clashes, plan_outputs
from enlarge.upscaler import DEFAULT_MODEL, Upscaler

TINY_CONFIGS = {
    "liif": {"encoder": {"name": "edsr", "n_resblocks": 1, "n_feats": 8}, "hidden": [16]},
    "lite": {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]},
}
ONE_LEVEL = 1 / 255


def tiny_model(arch: str) -> LoadedModel:
    """A random-weight model with a real receptive field, small enough to run in milliseconds."""
    torch.manual_seed(0)
    config = TINY_CONFIGS[arch]
    module = build(arch, config).eval()
    return LoadedModel(module, describe(f"tiny-{arch}", arch, config, module, has_weights=False))


def noise(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, c), dtype=np.float32)


@pytest.fixture(scope="module")
def bicubic() -> Upscaler:
    return Upscaler("bicubic")


def red_square_on_transparent_black(size: int = 16, lo: int = 5, hi: int = 11) -> DecodedImage:
    pixels = np.zeros((size, size, 4), dtype=np.float32)
    pixels[lo:hi, lo:hi] = (1.0, 0.0, 0.0, 1.0)
    return DecodedImage(pixels)


def test_rgba_edges_keep_their_colour(bicubic: Upscaler) -> None:
    image = red_square_on_transparent_black()
    out = bicubic.upscale_image(image, SizeRequest(scale=3.0).plan((16, 16))).pixels
    alpha = out[..., 3]
    edge = (alpha > 0.05) & (alpha < 0.95)
    assert edge.sum() > 50  # the enlarged edge is soft: there are semi-transparent pixels to check
    np.testing.assert_allclose(out[edge][:, :3], np.broadcast_to([1.0, 0.0, 0.0], (edge.sum(), 3)), atol=ONE_LEVEL)
    # enlarging the straight colour instead would have pulled the black of the transparent pixels into the edge
    straight = bicubic.upscale_image(DecodedImage(image.pixels[..., :3]), SizeRequest(scale=3.0).plan((16, 16)))
    assert straight.pixels[edge][:, 0].min() < 0.9


def test_transparent_pixels_get_zero_colour_and_opaque_rgba_skips_the_alpha_pass(bicubic: Upscaler) -> None:
    out = bicubic.upscale_image(red_square_on_transparent_black(), SizeRequest(scale=2.0).plan((16, 16))).pixels
    assert np.all(out[..., :3][out[..., 3] == 0] == 0)
    opaque = DecodedImage(np.concatenate([noise(8, 8, 3), np.ones((8, 8, 1), np.float32)], axis=-1))
    calls = []
    result = bicubic.upscale_image(opaque, SizeRequest(scale=2.0).plan((8, 8)), progress=lambda d, t: calls.append(t))
    assert np.all(result.pixels[..., 3] == 1.0)
    assert calls == [1]  # one pass: the constant alpha needed no enlarging


def test_grayscale_stays_grayscale(bicubic: Upscaler) -> None:
    for channels in (1, 2):
        pixels = noise(10, 12, channels)
        out = bicubic.upscale_image(DecodedImage(pixels), SizeRequest(scale=2.0).plan((12, 10)))
        assert out.pixels.shape == (20, 24, channels)
        assert out.mode == ("L" if channels == 1 else "LA")


def test_rgba_gray_and_colour_through_a_model_are_clamped(bicubic: Upscaler) -> None:
    model = Upscaler(tiny_model("lite"))
    for channels in (1, 2, 3, 4):
        out = model.upscale_image(DecodedImage(noise(6, 5, channels)), SizeRequest(scale=1.5).plan((5, 6))).pixels
        assert out.shape == (9, 8, channels)
        assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("arch", ["liif", "lite"])
def test_tiled_equals_untiled(arch: str) -> None:
    loaded = tiny_model(arch)
    image = DecodedImage(noise(26, 34, 4))
    plan = SizeRequest(scale=2.1).plan((34, 26))
    whole = Upscaler(loaded).upscale_image(image, plan).pixels
    tiles = []
    tiled = Upscaler(loaded, tile=16).upscale_image(image, plan, progress=lambda d, t: tiles.append((d, t))).pixels
    assert tiles[-1] == (2 * 6, 2 * 6)  # 2×3 tiles, colour then alpha
    np.testing.assert_allclose(tiled, whole, atol=ONE_LEVEL)


def test_bit_depth_icc_and_exif_are_carried(tmp_path: Path, bicubic: Upscaler) -> None:
    ramp = np.linspace(0, 1, 12 * 16, dtype=np.float32).reshape(12, 16, 1)
    source = tmp_path / "deep.png"
    exif = Image.Exif()
    exif[0x010F] = "enlarge-test"  # Make
    write_image(source, DecodedImage(np.repeat(ramp, 3, axis=-1), bit_depth=16, exif=exif.tobytes()))
    result = bicubic.enlarge_file(source, tmp_path / "deep_x2.png", SizeRequest(scale=2.0))
    out = read_image(result.output)
    assert out.bit_depth == 16 and out.pixels.shape == (24, 32, 3)
    levels = np.unique(np.rint(out.pixels * 65535).astype(np.int64))
    assert np.any(levels % 257 != 0)  # not 8-bit levels stretched to 16 bits
    assert out.exif is not None and b"enlarge-test" in out.exif
    icc = b"\x00" * 16 + b"RGB " + b"\x00" * 108
    decoded = DecodedImage(noise(4, 4, 3), icc_profile=icc, exif=b"Exif\x00\x00x", source_format="PNG")
    kept = bicubic.upscale_image(decoded, SizeRequest(scale=2.0).plan((4, 4)))
    assert (kept.icc_profile, kept.exif, kept.source_format) == (icc, b"Exif\x00\x00x", "PNG")


class Untouchable(torch.nn.Module):
    """A model that fails if used: shrinking must never reach the model."""

    receptive_field = 1

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model ran for a downscale")

    def query(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model ran for a downscale")


def test_downscale_is_lanczos_not_the_model(tmp_path: Path) -> None:
    module = Untouchable()
    upscaler = Upscaler(LoadedModel(module, describe("untouchable", "bicubic", {}, module, has_weights=False)))
    image = DecodedImage(noise(40, 60, 3))
    plan = SizeRequest(scale=0.5).plan((60, 40))
    out = upscaler.upscale_image(image, plan).pixels
    assert out.shape == (20, 30, 3) and 0.0 <= out.min() and out.max() <= 1.0
    assert upscaler.method(plan) == "lanczos"
    flat = DecodedImage(np.full((40, 60, 3), 0.25, np.float32))
    np.testing.assert_allclose(upscaler.upscale_image(flat, plan).pixels, 0.25, atol=1e-5)


def test_stretch_up_one_axis_and_down_the_other(bicubic: Upscaler) -> None:
    plan = SizeRequest(size=(40, 5), fit="stretch").plan((10, 10))
    assert bicubic.upscale_image(DecodedImage(noise(10, 10, 3)), plan).pixels.shape == (5, 40, 3)


def test_pad_is_transparent_with_alpha_else_the_background(bicubic: Upscaler) -> None:
    plan = SizeRequest(size=(20, 10), fit="pad").plan((10, 10))  # 10×10 centred on 20×10: 5 px each side
    rgb = bicubic.upscale_image(DecodedImage(noise(10, 10, 3)), plan, background=(255, 0, 0)).pixels
    assert rgb.shape == (10, 20, 3)
    np.testing.assert_array_equal(rgb[:, :5], np.broadcast_to([1.0, 0.0, 0.0], (10, 5, 3)))
    rgba = bicubic.upscale_image(DecodedImage(noise(10, 10, 4)), plan).pixels
    assert np.all(rgba[:, :5] == 0) and np.all(rgba[:, 15:] == 0)
    gray = bicubic.upscale_image(DecodedImage(noise(10, 10, 1)), plan, background=(255, 255, 255)).pixels
    np.testing.assert_allclose(gray[:, :5], 1.0, atol=1e-6)


def test_cover_crops_to_the_box(bicubic: Upscaler) -> None:
    plan = SizeRequest(size=(30, 30), fit="cover").plan((20, 10))
    assert bicubic.upscale_image(DecodedImage(noise(10, 20, 3)), plan).pixels.shape == (30, 30, 3)


def test_settings_are_checked() -> None:
    assert Upscaler().model_name == DEFAULT_MODEL
    with pytest.raises(EnlargeError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(EnlargeError, match="not available"):
            Upscaler("bicubic", device="cuda")
    with pytest.raises(EnlargeError, match="threads"):
        Upscaler("bicubic", threads=0)
    for tiny_tile in (0, 2, MIN_TILE - 1):
        with pytest.raises(EnlargeError, match=f"minimum of {MIN_TILE}"):
            Upscaler("bicubic", tile=tiny_tile)
    with pytest.raises(EnlargeError, match="precision"):
        Upscaler("bicubic", precision="fp8")


def test_public_upscale_takes_pil_images_and_paths(tmp_path: Path) -> None:
    pil = Image.fromarray((noise(10, 16, 3) * 255).astype(np.uint8))
    big = enlarge.upscale(pil, scale=2.5)
    assert isinstance(big, Image.Image) and big.size == (40, 25) and big.mode == "RGB"
    path = tmp_path / "p.png"
    pil.convert("LA").save(path)
    boxed = enlarge.upscale(path, size=(64, 64), fit="pad")
    assert boxed.size == (64, 64) and boxed.mode == "LA"
    assert enlarge.Upscaler is Upscaler


def test_output_planning(tmp_path: Path) -> None:
    for name in ("a.png", "b.gif", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    request = SizeRequest(scale=2.0)
    assert expand_inputs([tmp_path]) == [tmp_path / "a.png", tmp_path / "b.gif"]
    assert expand_inputs([str(tmp_path / "*.png")]) == [tmp_path / "a.png"]
    beside = plan_outputs([tmp_path / "a.png", tmp_path / "b.gif"], request)
    assert [out.name for _, out in beside] == ["a_x2.png", "b_x2.png"]  # GIF is not writable: PNG
    folder = tmp_path / "out"
    into = plan_outputs([tmp_path], request, folder)
    assert folder.is_dir() and [out for _, out in into] == [folder / "a.png", folder / "b.png"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(b"")
    clashing = plan_outputs([tmp_path / "a.png", tmp_path / "sub" / "a.png", tmp_path / "b.gif"], request, folder)
    clashes = output_clashes(clashing)
    assert list(clashes) == [tmp_path / "sub" / "a.png"]  # only the later one: the first keeps its output
    assert "as " + str(tmp_path / "a.png") in str(clashes[tmp_path / "sub" / "a.png"])
    with pytest.raises(OutputError, match="names one image file, but there are 2 inputs"):
        plan_outputs([tmp_path / "a.png", tmp_path / "b.gif"], request, tmp_path / "two.png")
    assert not (tmp_path / "two.png").exists()


def test_model_list() -> None:
    infos = {info.name: info for info in list_models()}
    assert infos["bicubic"].parameters == 0 and infos["bicubic"].available
    assert infos["lite"].parameters > 0
