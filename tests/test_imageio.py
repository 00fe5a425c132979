"""Tests for enlarge.imageio: lossless round trips, metadata, atomic writes and one clear error per bad input."""

from __future__ import annotations

import io
import logging
import os
import struct
import sys
import types
import warnings
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from PIL import ExifTags, Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from enlarge.errors import ImageTooLargeError, InputError, OutputError
from enlarge.imageio import pillow
from enlarge.imageio import (
    DEFAULT_QUALITY,
    SUPPORTED_OUTPUT_EXTENSIONS,
    DecodedImage,
    decode_image_bytes,
    encode_image_bytes,
    parse_color,
    probe_image,
    read_image,
    write_image,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HEIGHT, WIDTH = 12, 20
MAX_16 = 65535
ORIENTATION = ExifTags.Base.Orientation
UPRIGHT_VIEWS = {3: lambda a: a[::-1, ::-1], 6: lambda a: np.rot90(a, k=-1)}  # upright views: 180°, 90° clockwise


def random_u8(channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, channels), dtype=np.uint8)


def random_u16(channels: int, seed: int = 0) -> np.ndarray:
    """16-bit samples that an 8-bit reduction could not survive (most values are far above 255)."""
    return np.random.default_rng(seed).integers(256, MAX_16 + 1, (HEIGHT, WIDTH, channels), dtype=np.uint16)


def save_pillow(path: Path, samples: np.ndarray, **options) -> Path:
    Image.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples).save(path, **options)
    return path


def save_png16(path: Path, samples: np.ndarray, **options) -> Path:
    height, width, channels = samples.shape
    writer = png.Writer(width, height, greyscale=channels < 3, alpha=channels in (2, 4), bitdepth=16, **options)
    with path.open("wb") as f:
        writer.write(f, samples.reshape(height, width * channels).tolist())
    return path


def as_u8(image: DecodedImage) -> np.ndarray:
    return np.rint(image.pixels * 255).astype(np.uint8)


def as_u16(image: DecodedImage) -> np.ndarray:
    return np.rint(image.pixels * MAX_16).astype(np.uint16)


def info_of(path: Path) -> dict:
    with Image.open(path) as im:
        return dict(im.info)


def exif_of(path: Path) -> Image.Exif:
    """A file's EXIF, with the sub-IFDs the tests look at read while the file is open."""
    with Image.open(path) as im:
        exif = im.getexif()
        exif.get_ifd(ExifTags.IFD.Exif)
        exif.get_ifd(ExifTags.IFD.IFD1)
        return exif


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with_thumbnail(orientation: int) -> bytes:
    """EXIF whose IFD0 holds Orientation and Make and whose IFD1 points at a JPEG thumbnail (Pillow writes no IFD1)."""
    thumbnail = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(thumbnail, "JPEG")
    make = b"TestCam\x00"
    ifd0_at, ifd0_entries = 8, 2
    ifd1_at = ifd0_at + 2 + 12 * ifd0_entries + 4
    ifd1_entries = 2
    make_at = ifd1_at + 2 + 12 * ifd1_entries + 4
    thumb_at = make_at + len(make)
    tiff = b"II*\x00" + struct.pack("<I", ifd0_at)
    tiff += struct.pack("<H", ifd0_entries)
    tiff += struct.pack("<HHIHH", ExifTags.Base.Make, 2, len(make), 0, 0)[:8] + struct.pack("<I", make_at)
    tiff += struct.pack("<HHIHH", ORIENTATION, 3, 1, orientation, 0)
    tiff += struct.pack("<I", ifd1_at)
    tiff += struct.pack("<H", ifd1_entries)
    tiff += struct.pack("<HHII", ExifTags.Base.JpegIFOffset, 4, 1, thumb_at)
    tiff += struct.pack("<HHII", ExifTags.Base.JpegIFByteCount, 4, 1, len(thumbnail.getvalue()))
    tiff += struct.pack("<I", 0)
    return b"Exif\x00\x00" + tiff + make + thumbnail.getvalue()


# ---------------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_8bit_png_round_trip_is_exact(tmp_path: Path, channels: int, mode: str) -> None:
    samples = random_u8(channels)
    image = read_image(save_pillow(tmp_path / "in.png", samples))
    assert (image.mode, image.bit_depth, image.source_format) == (mode, 8, "PNG")
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    assert (image.has_alpha, image.is_gray) == (channels in (2, 4), channels < 3)
    assert image.pixels.dtype == np.float32 and image.pixels.flags.c_contiguous
    np.testing.assert_array_equal(as_u8(image), samples)
    again = read_image(write_image(tmp_path / "out.png", image))
    np.testing.assert_array_equal(as_u8(again), samples)


@pytest.mark.parametrize("suffix", [".tif", ".webp", ".bmp", ".gif"])
def test_other_8bit_formats_are_read(tmp_path: Path, suffix: str) -> None:
    samples = random_u8(3)
    options = {"lossless": True} if suffix == ".webp" else {}
    image = read_image(save_pillow(tmp_path / f"in{suffix}", samples, **options))
    assert image.mode in ("RGB", "RGBA") and image.bit_depth == 8
    if suffix != ".gif":  # GIF quantises to a palette
        np.testing.assert_array_equal(as_u8(image)[..., :3], samples)


def test_palette_becomes_rgb_and_palette_transparency_becomes_alpha(tmp_path: Path) -> None:
    palette_image = Image.fromarray(random_u8(3)).quantize(colors=16)
    palette_image.save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    assert image.mode == "RGB"
    np.testing.assert_array_equal(as_u8(image), np.asarray(palette_image.convert("RGB")))

    palette_image.info["transparency"] = 0
    palette_image.save(tmp_path / "pt.png", transparency=0)
    image = read_image(tmp_path / "pt.png")
    assert image.mode == "RGBA"
    index = np.asarray(palette_image)
    np.testing.assert_array_equal(as_u8(image)[..., 3], np.where(index == 0, 0, 255))


def test_one_bit_becomes_gray(tmp_path: Path) -> None:
    bits = random_u8(1)[..., 0] > 127
    Image.fromarray(bits).save(tmp_path / "bits.png")
    image = read_image(tmp_path / "bits.png")
    assert image.mode == "L"
    np.testing.assert_array_equal(image.pixels[..., 0], bits.astype(np.float32))


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_is_converted_to_rgb_with_a_note(tmp_path: Path, suffix: str) -> None:
    cmyk = Image.frombytes("CMYK", (WIDTH, HEIGHT), random_u8(4).tobytes())
    cmyk.save(tmp_path / f"cmyk{suffix}")
    image = read_image(tmp_path / f"cmyk{suffix}")
    assert image.mode == "RGB"
    assert any("CMYK" in note for note in image.notes)
    if suffix == ".tif":  # lossless: the result is exactly Pillow's CMYK → RGB
        np.testing.assert_array_equal(as_u8(image), np.asarray(cmyk.convert("RGB")))


def test_cmyk_with_an_unusable_icc_profile_falls_back_with_a_note(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", icc_profile=srgb_icc())  # RGB profile
    image = read_image(tmp_path / "c.jpg")
    assert image.mode == "RGB" and image.icc_profile is None
    assert any("ICC profile was unusable" in note for note in image.notes)


def test_multi_picture_jpeg_keeps_its_primary_image(tmp_path: Path) -> None:
    pictures = [Image.new("RGB", (8, 6), colour) for colour in ("red", "blue")]
    pictures[0].save(tmp_path / "camera.jpg", "MPO", save_all=True, append_images=pictures[1:])
    image = read_image(tmp_path / "camera.jpg")
    assert image.source_format == "JPEG" and any("primary image" in note for note in image.notes)
    np.testing.assert_allclose(image.pixels[3, 4], (1, 0, 0), atol=0.02)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_keeps_every_bit_through_read_and_write(tmp_path: Path, channels: int) -> None:
    samples = random_u16(channels)
    image = read_image(save_png16(tmp_path / "in.png", samples))
    assert image.bit_depth == 16 and image.pixels.shape[2] == channels
    np.testing.assert_array_equal(as_u16(image), samples)
    write_image(tmp_path / "out.png", image)
    _, _, rows, info = png.Reader(bytes=(tmp_path / "out.png").read_bytes()).read()
    assert info["bitdepth"] == 16
    np.testing.assert_array_equal(np.array([list(r) for r in rows], dtype=np.uint16).reshape(samples.shape), samples)


def test_16bit_png_colour_key_becomes_alpha(tmp_path: Path) -> None:
    samples = random_u16(3)
    key = tuple(int(v) for v in samples[0, 0])
    image = read_image(save_png16(tmp_path / "key.png", samples, transparent=key))
    assert image.mode == "RGBA"
    assert image.pixels[0, 0, 3] == 0.0 and image.pixels[..., 3].sum() == HEIGHT * WIDTH - 1


@pytest.mark.parametrize(("channels", "photometric"), [(1, "minisblack"), (3, "rgb"), (4, "rgb")])
def test_16bit_tiff_keeps_every_bit_through_read_and_write(tmp_path: Path, channels: int, photometric: str) -> None:
    samples = random_u16(channels)
    extras = {"extrasamples": ["unassalpha"]} if channels == 4 else {}
    data = samples[..., 0] if channels == 1 else samples
    tifffile.imwrite(tmp_path / "in.tif", data, photometric=photometric, metadata=None, **extras)
    image = read_image(tmp_path / "in.tif")
    assert image.bit_depth == 16 and image.pixels.shape[2] == channels and image.source_format == "TIFF"
    np.testing.assert_array_equal(as_u16(image), samples)
    write_image(tmp_path / "out.tiff", image)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tiff").reshape(samples.shape), samples)
    np.testing.assert_array_equal(as_u16(read_image(tmp_path / "out.tiff")), samples)


def test_16bit_tiff_premultiplied_alpha_becomes_straight(tmp_path: Path) -> None:
    straight = np.full((HEIGHT, WIDTH, 4), 40000, dtype=np.uint16)
    straight[..., 3] = MAX_16 // 2
    premultiplied = straight.copy()
    premultiplied[..., :3] = np.round(straight[..., :3] * (straight[..., 3:] / MAX_16)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "pm.tif", premultiplied, photometric="rgb", extrasamples=["assocalpha"], metadata=None)
    image = read_image(tmp_path / "pm.tif")
    np.testing.assert_allclose(image.pixels[..., :3], 40000 / MAX_16, atol=1e-4)
    assert any("premultiplied" in note for note in image.notes)


FIRST_TAG_TYPE = 12  # in a Pillow TIFF: header (8) + entry count (2) + the first tag's number (2)
INVALID_TIFF_TYPE = 132  # no TIFF field type has this number


def test_a_tiff_with_a_damaged_tag_is_corrupt_and_tifffile_stays_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19 (fuzzing): an 8-bit RGB TIFF whose width tag has an invalid type was called "a valid TIFF ... not
    supported", and tifffile's complaint about the tag reached stderr (Python's last-resort log handler)."""
    buffer = io.BytesIO()
    Image.new("RGB", (12, 12), "red").save(buffer, format="TIFF")
    data = bytearray(buffer.getvalue())
    data[FIRST_TAG_TYPE:FIRST_TAG_TYPE + 2] = struct.pack("<H", INVALID_TIFF_TYPE)
    (tmp_path / "bad.tif").write_bytes(bytes(data))
    with caplog.at_level(logging.DEBUG), pytest.raises(InputError, match="truncated or corrupt"):
        read_image(tmp_path / "bad.tif")
    assert [record.getMessage() for record in caplog.records if record.name.startswith("tifffile")] == []


SAMPLES_PER_PIXEL_TAG = 277
TOO_MANY_SAMPLES = 1028  # above Pillow's MAX_SAMPLESPERPIXEL: it logs an error, then refuses the file


def test_pillow_logging_about_a_damaged_tiff_stays_off_stderr(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 19 (fuzzing): a TIFF claiming 1028 samples per pixel made Pillow log "More samples per pixel than can
    be decoded" onto stderr (Python's last-resort handler) above our one line."""
    buffer = io.BytesIO()
    Image.new("RGB", (12, 12), "red").save(buffer, format="TIFF")
    data = bytearray(buffer.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for entry in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * entry
        if struct.unpack_from("<H", data, at)[0] == SAMPLES_PER_PIXEL_TAG:
            struct.pack_into("<HHIHH", data, at, SAMPLES_PER_PIXEL_TAG, 3, 1, TOO_MANY_SAMPLES, 0)
    (tmp_path / "many.tif").write_bytes(bytes(data))
    with caplog.at_level(logging.DEBUG), pytest.raises(InputError, match="many.tif"):
        read_image(tmp_path / "many.tif")
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_16bit_cmyk_tiff_is_refused_with_a_way_out(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "c.tif", random_u16(4), photometric="separated", metadata=None)
    with pytest.raises(InputError, match="is a 16-bit CMYK TIFF, which is not supported; convert it"):
        read_image(tmp_path / "c.tif")


def test_float_tiff_is_clipped_with_a_note(tmp_path: Path) -> None:
    values = np.linspace(-0.5, 1.5, HEIGHT * WIDTH, dtype=np.float32).reshape(HEIGHT, WIDTH)
    tifffile.imwrite(tmp_path / "f.tif", values, photometric="minisblack", metadata=None)
    image = read_image(tmp_path / "f.tif")
    assert image.bit_depth == 16 and image.pixels.min() == 0.0 and image.pixels.max() == 1.0
    assert any("clipped" in note for note in image.notes)


def test_16bit_gray_tiff_in_a_codec_tifffile_lacks_still_keeps_16_bits(tmp_path: Path) -> None:
    samples = random_u16(1)
    Image.fromarray(samples[..., 0]).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    image = read_image(tmp_path / "lzw.tif")
    assert image.bit_depth == 16
    np.testing.assert_array_equal(as_u16(image), samples)


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_16bit_to_an_8bit_format_is_reduced_with_a_note(tmp_path: Path, suffix: str) -> None:
    image = DecodedImage(random_u16(3).astype(np.float32) / MAX_16, bit_depth=16)
    written = read_image(write_image(tmp_path / f"out{suffix}", image))
    assert written.bit_depth == 8
    assert any("16-bit reduced to 8-bit" in note for note in image.notes)


# ---------------------------------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow_and_reset_to_1(tmp_path: Path, orientation: int) -> None:
    samples = random_u8(3)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[ExifTags.Base.Make] = "TestCam"
    path = save_pillow(tmp_path / "o.png", samples, exif=exif.tobytes())
    image = read_image(path)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(as_u8(image), expected)
    assert probe_image(path)[:2] == (image.width, image.height)
    written = exif_of(write_image(tmp_path / "o.jpg", image))
    assert written[ORIENTATION] == 1 and written[ExifTags.Base.Make] == "TestCam"


def test_jpeg_exif_rotation_6_turns_pixels_and_drops_the_thumbnail(tmp_path: Path) -> None:
    samples = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    samples[:, : WIDTH // 2] = 255  # left half white: after a 90° clockwise turn the top half is white
    source = tmp_path / "rotated.jpg"
    save_pillow(source, samples, exif=exif_with_thumbnail(orientation=6), quality=95)
    assert exif_of(source).get_ifd(ExifTags.IFD.IFD1), "the test file must carry a thumbnail"
    image = read_image(source)
    assert (image.width, image.height) == (HEIGHT, WIDTH)
    gray = image.pixels.mean(axis=2)
    assert gray[: WIDTH // 2 - 2].mean() > 0.9 and gray[WIDTH // 2 + 2 :].mean() < 0.1
    assert any("orientation (6)" in note for note in image.notes)
    exif = Image.Exif()
    exif.load(image.exif)
    assert exif[ORIENTATION] == 1 and exif[ExifTags.Base.Make] == "TestCam"
    assert not exif.get_ifd(ExifTags.IFD.IFD1)
    for suffix in (".jpg", ".png", ".webp", ".tif"):
        assert exif_of(write_image(tmp_path / f"out{suffix}", image))[ORIENTATION] == 1, suffix


def test_invalid_exif_orientation_is_ignored_with_a_note(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 9
    samples = random_u8(3)
    image = read_image(save_pillow(tmp_path / "o.png", samples, exif=exif.tobytes()))
    np.testing.assert_array_equal(as_u8(image), samples)
    assert "ignored an invalid EXIF orientation (9)" in image.notes
    carried = Image.Exif()
    carried.load(image.exif)
    assert carried[ORIENTATION] == 1


def test_exif_sub_ifd_survives(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:01:02 03:04:05"
    image = read_image(save_pillow(tmp_path / "e.jpg", random_u8(3), exif=exif.tobytes()))
    out = exif_of(write_image(tmp_path / "out.jpg", image))
    assert out.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2024:01:02 03:04:05"


@pytest.mark.parametrize("compression", [None, "tiff_adobe_deflate"])  # Pillow's own decoder, and libtiff
@pytest.mark.parametrize("orientation", [3, 6])
def test_tiff_is_turned_upright_exactly_once(tmp_path: Path, compression: str | None, orientation: int) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    samples = random_u8(3)
    path = save_pillow(tmp_path / "in.tif", samples, exif=exif.tobytes(), compression=compression)
    image = read_image(path)
    np.testing.assert_array_equal(as_u8(image), UPRIGHT_VIEWS[orientation](samples))
    assert probe_image(path)[:2] == (image.width, image.height)


def test_16bit_tiff_is_turned_upright(tmp_path: Path) -> None:
    samples = random_u16(3)
    tifffile.imwrite(tmp_path / "in.tif", samples, photometric="rgb", metadata=None, extratags=[(ORIENTATION, 3, 1, 6)])
    image = read_image(tmp_path / "in.tif")
    np.testing.assert_array_equal(as_u16(image), UPRIGHT_VIEWS[6](samples))
    assert probe_image(tmp_path / "in.tif")[:2] == (HEIGHT, WIDTH)


def test_tiff_exif_keeps_description_and_sheds_the_file_layout(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 3
    exif[ExifTags.Base.Make] = "TestCam"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:01:02 03:04:05"
    samples = random_u8(3)
    image = read_image(save_pillow(tmp_path / "in.tif", samples, exif=exif.tobytes()))
    np.testing.assert_array_equal(as_u8(image), samples[::-1, ::-1])
    carried = Image.Exif()
    carried.load(image.exif)
    assert carried[ORIENTATION] == 1 and carried[ExifTags.Base.Make] == "TestCam"
    assert carried.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2024:01:02 03:04:05"
    assert not {ExifTags.Base.StripOffsets, ExifTags.Base.ImageWidth, ExifTags.Base.BitsPerSample} & set(carried)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_is_carried_to_every_format(tmp_path: Path, suffix: str) -> None:
    icc = srgb_icc()
    image = read_image(save_pillow(tmp_path / f"in{suffix}", random_u8(3), icc_profile=icc))
    assert image.icc_profile == icc
    assert info_of(write_image(tmp_path / f"out{suffix}", image)).get("icc_profile") == icc


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_icc_and_exif_are_carried_by_16bit_output(tmp_path: Path, suffix: str) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    image = DecodedImage(random_u16(3).astype(np.float32) / MAX_16, 16, srgb_icc(), exif.tobytes())
    written = read_image(write_image(tmp_path / f"out{suffix}", image))
    assert written.bit_depth == 16 and written.icc_profile == srgb_icc()
    if suffix == ".png":
        assert exif_of(tmp_path / "out.png")[ExifTags.Base.Make] == "TestCam"
    else:
        assert any("EXIF not written" in note for note in image.notes)


def test_mismatched_icc_profile_is_dropped_with_a_note(tmp_path: Path) -> None:
    image = DecodedImage(random_u8(1).astype(np.float32) / 255, icc_profile=srgb_icc())
    assert "icc_profile" not in info_of(write_image(tmp_path / "gray.png", image))
    assert any("ICC profile dropped" in note for note in image.notes)


# ---------------------------------------------------------------------------------------------------- encoding options


def test_jpeg_quality_changes_size_and_defaults_to_95() -> None:
    image = DecodedImage(random_u8(3).astype(np.float32) / 255)
    small, default = encode_image_bytes(image, "jpg", quality=30), encode_image_bytes(image, "JPEG")
    assert len(small) < len(default)
    assert DEFAULT_QUALITY == 95 and default == encode_image_bytes(image, ".jpeg", quality=95)


@pytest.mark.parametrize("quality", [0, 101, 9.5, True])
def test_bad_quality_is_an_output_error(quality: object) -> None:
    with pytest.raises(OutputError, match="quality"):
        encode_image_bytes(DecodedImage(np.zeros((2, 2, 3), np.float32)), "jpeg", quality=quality)  # type: ignore


def test_transparency_to_jpeg_needs_a_background(tmp_path: Path) -> None:
    pixels = np.zeros((16, 16, 4), dtype=np.float32)
    pixels[:, :8] = (0.0, 0.0, 1.0, 1.0)  # left: opaque blue; right: fully transparent
    image = DecodedImage(pixels)
    expected = r"transparency, which JPEG cannot store: give a background colour to flatten it onto, or choose \.png"
    with pytest.raises(OutputError, match=expected):
        write_image(tmp_path / "out.jpg", image)
    assert list(tmp_path.iterdir()) == []
    flattened = read_image(write_image(tmp_path / "out.jpg", image, background=(255, 0, 0)))
    assert flattened.mode == "RGB"
    np.testing.assert_allclose(flattened.pixels[4, 2], (0, 0, 1), atol=0.03)
    np.testing.assert_allclose(flattened.pixels[4, 13], (1, 0, 0), atol=0.03)


def test_gray_alpha_flattens_to_gray_on_gray_and_to_rgb_on_colour() -> None:
    image = DecodedImage(np.dstack([np.full((4, 4), 0.5), np.zeros((4, 4))]).astype(np.float32))
    assert Image.open(io.BytesIO(encode_image_bytes(image, "jpeg", background=(255, 255, 255)))).mode == "L"
    assert Image.open(io.BytesIO(encode_image_bytes(image, "jpeg", background=(0, 255, 0)))).mode == "RGB"


def test_webp_keeps_alpha_and_gray_becomes_rgb() -> None:
    rgba = DecodedImage(random_u8(4).astype(np.float32) / 255)
    assert Image.open(io.BytesIO(encode_image_bytes(rgba, "webp"))).mode == "RGBA"
    gray = DecodedImage(random_u8(1).astype(np.float32) / 255)
    assert decode_image_bytes(encode_image_bytes(gray, "webp")).mode == "RGB"


def test_format_side_limits_are_output_errors() -> None:
    wide = DecodedImage(np.zeros((1, 16384, 3), np.float32))
    with pytest.raises(OutputError, match="WEBP holds at most 16383 pixels per side"):
        encode_image_bytes(wide, "webp")


@pytest.mark.parametrize("name", ["out.bmp", "out", "out.png.txt"])
def test_unsupported_output_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError, match="unsupported extension"):
        write_image(tmp_path / name, DecodedImage(np.zeros((2, 2, 3), np.float32)))
    with pytest.raises(OutputError, match="unsupported output format"):
        encode_image_bytes(DecodedImage(np.zeros((2, 2, 3), np.float32)), "bmp")
    assert set(SUPPORTED_OUTPUT_EXTENSIONS) == {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


def test_decoded_image_rejects_arrays_that_would_be_written_as_garbage() -> None:
    for pixels in (np.zeros((2, 2), np.float32), np.zeros((2, 2, 5), np.float32), np.zeros((2, 2, 3), np.uint8)):
        with pytest.raises(ValueError):
            DecodedImage(pixels)


# ---------------------------------------------------------------------------------------------------- atomic writes


def test_failed_encode_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_then_fail(stream, *args, **kwargs) -> None:
        stream.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(pillow, "write_with_pillow", half_then_fail)
    image = DecodedImage(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(OutputError, match="disk full"):
        write_image(tmp_path / "out.png", image)
    assert list(tmp_path.iterdir()) == []

    (tmp_path / "keep.png").write_bytes(b"old")
    with pytest.raises(OutputError):
        write_image(tmp_path / "keep.png", image, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"] and (tmp_path / "keep.png").read_bytes() == b"old"


def test_interrupt_during_encode_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args, **kwargs) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pillow, "write_with_pillow", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "out.png", DecodedImage(np.zeros((2, 2, 3), np.float32)))
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    image = DecodedImage(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(OutputError, match="already exists; allow overwriting"):
        write_image(target, image)
    assert target.read_bytes() == b"old"
    assert write_image(target, image, overwrite=True) == target
    assert read_image(target).width == 2
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_written_file_has_ordinary_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = write_image(tmp_path / "out.png", DecodedImage(np.zeros((2, 2, 3), np.float32)))
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_missing_output_folder_and_folder_as_target(tmp_path: Path) -> None:
    image = DecodedImage(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(OutputError, match="does not exist; create it first"):
        write_image(tmp_path / "nope" / "out.png", image)
    with pytest.raises(OutputError, match="is a folder"):
        (tmp_path / "dir.png").mkdir()
        write_image(tmp_path / "dir.png", image, overwrite=True)


def deny(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Make opening any path with `mode` fail as the OS does without permission (tests may run as root)."""
    real_open = Path.open

    def guarded(self: Path, open_mode: str = "r", *args, **kwargs):
        if open_mode == mode:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, open_mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)


def test_unwritable_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deny(monkeypatch, "xb")
    with pytest.raises(OutputError, match="permission denied; choose a writable folder"):
        write_image(tmp_path / "out.png", DecodedImage(np.zeros((2, 2, 3), np.float32)))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------- bad input


def png_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(samples).save(buffer, "PNG")
    return buffer.getvalue()


def one_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("side", [16, 96])  # cut inside the header, and inside the pixel data
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "TIFF"])
def test_truncated_images_are_refused_not_padded(fmt: str, side: int) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, fmt)
    data = buffer.getvalue()
    with pytest.raises(InputError) as excinfo:
        decode_image_bytes(data[: len(data) // 2], name="half")
    assert one_line(excinfo).startswith("half is truncated or corrupt") and "re-download" in str(excinfo.value)


def test_truncated_16bit_png_is_refused(tmp_path: Path) -> None:
    data = save_png16(tmp_path / "deep.png", random_u16(3)).read_bytes()
    with pytest.raises(InputError, match="truncated or corrupt"):
        decode_image_bytes(data[: len(data) // 2])


def test_truncation_is_an_error_even_if_someone_enabled_pillow_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = png_bytes(random_u8(3))
    with pytest.raises(InputError, match="truncated"):
        decode_image_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored to whatever the process had


@pytest.mark.parametrize("data", [b"hello, this is not an image at all", bytes(range(256)) * 4, b"<svg></svg>"])
def test_garbage_is_not_an_image(data: bytes) -> None:
    with pytest.raises(InputError) as excinfo:
        decode_image_bytes(data, name="junk.png")
    assert one_line(excinfo).startswith("junk.png is not an image in a supported format; use PNG")


def test_garbage_behind_a_known_signature_is_called_corrupt() -> None:
    with pytest.raises(InputError, match="^x.png is truncated or corrupt"):
        decode_image_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, name="x.png")


@pytest.mark.parametrize("signature", [b"\xff\xd8\xff", b"GIF89a", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP"])
def test_an_unidentifiable_file_is_explained_without_pillow_internals(signature: bytes) -> None:
    """Pillow's "cannot identify image file <_io.BytesIO object at 0x…>" becomes what it means and what to do."""
    with pytest.raises(InputError) as excinfo:
        decode_image_bytes(signature + b"\x00" * 20, name="x.jpg")
    expected = "x.jpg is truncated or corrupt (its header cannot be read); re-download or re-export it"
    assert one_line(excinfo) == expected


def test_empty_upload() -> None:
    with pytest.raises(InputError, match="empty"):
        decode_image_bytes(b"")


@pytest.mark.parametrize(("brand", "kind"), [(b"heic", "a HEIC image"), (b"mif1", "a HEIF image")])
def test_heic_without_plugin_says_which_plugin(brand: bytes, kind: str) -> None:
    data = b"\x00\x00\x00\x18ftyp" + brand + b"\x00" * 40
    with pytest.raises(InputError) as excinfo:
        decode_image_bytes(data, name="photo.heic")
    assert one_line(excinfo) == (
        f"photo.heic is {kind}, which this installation cannot decode: "
        "install a plugin such as pillow-heif (pip install pillow-heif), or convert it"
    )


def test_avif_without_support_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def pillow_without_avif(*args, **kwargs) -> Image.Image:
        raise UnidentifiedImageError("cannot identify image file")

    monkeypatch.setattr(Image, "open", pillow_without_avif)
    expected = r"^x.avif is an AVIF image, which this installation cannot decode: upgrade to a Pillow with AVIF"
    with pytest.raises(InputError, match=expected):
        decode_image_bytes(b"\x00\x00\x00\x1cftypavif" + b"\x00" * 40, name="x.avif")


def test_an_installed_heif_plugin_is_registered_before_giving_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setitem(sys.modules, "pillow_heif", types.SimpleNamespace(register_heif_opener=lambda: calls.append(1)))
    with pytest.raises(InputError, match="truncated or corrupt"):
        decode_image_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40)
    assert calls == [1]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_are_refused(fmt: str) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(InputError) as excinfo:
        decode_image_bytes(buffer.getvalue(), name="anim")
    assert one_line(excinfo) == "anim is animated (3 frames); only still images are supported: export one frame as PNG"


def test_multi_page_tiff_is_refused(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green")]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(InputError, match="has 2 pages; only single-image files"):
        read_image(tmp_path / "pages.tif")


def test_single_frame_gif_is_fine() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "GIF")
    assert decode_image_bytes(buffer.getvalue()).mode == "RGB"


def test_too_many_pixels_is_refused_with_both_numbers(tmp_path: Path) -> None:
    path = save_pillow(tmp_path / "in.png", random_u8(3))
    with pytest.raises(ImageTooLargeError) as excinfo:
        read_image(path, max_pixels=100)
    message = one_line(excinfo)
    assert f"{WIDTH}x{HEIGHT} = {WIDTH * HEIGHT:,} pixels" in message and "limit of 100;" in message
    assert "raise the input limit only if you trust this file" in message


def test_pixel_limit_is_checked_from_the_header_before_decoding() -> None:
    """A 100000×100000 header with almost no data: a decoder would call it truncated, our limit sees it first."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 64)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    with pytest.raises(ImageTooLargeError, match="10,000,000,000 pixels, above the input limit of 100,000,000"):
        decode_image_bytes(bomb)


def test_pillows_own_bomb_limit_never_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # far below this image, for both warning and error
    data = png_bytes(random_u8(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_image_bytes(data).width == WIDTH
    assert Image.MAX_IMAGE_PIXELS == 10  # restored to whatever the process had


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError) as excinfo:
        read_image(tmp_path / "missing.png")
    assert one_line(excinfo) == f"input file not found: {tmp_path / 'missing.png'}; check the path"
    with pytest.raises(InputError, match="is a folder, not an image file"):
        read_image(tmp_path)
    with pytest.raises(InputError, match="input file not found"):
        probe_image(tmp_path / "missing.png")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_pillow(tmp_path / "secret.png", random_u8(3))
    deny(monkeypatch, "rb")
    with pytest.raises(InputError) as excinfo:
        read_image(path)
    assert one_line(excinfo) == f"cannot read {path}: permission denied; check the file's permissions"


# ---------------------------------------------------------------------------------------------------- probe, colours


def test_probe_reads_only_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_pillow(tmp_path / "in.jpg", random_u8(3))
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("probe decoded the pixels"))
    assert probe_image(path) == (WIDTH, HEIGHT, "JPEG")
    assert probe_image(save_png16(tmp_path / "deep.png", random_u16(3))) == (WIDTH, HEIGHT, "PNG")


@pytest.mark.parametrize(
    ("text", "rgb"),
    [("#ffffff", (255, 255, 255)), ("white", (255, 255, 255)), ("255,255,255", (255, 255, 255)),
     (" 0, 128 ,255 ", (0, 128, 255)), ("#f00", (255, 0, 0)), ("Black", (0, 0, 0))],
)
def test_parse_color(text: str, rgb: tuple[int, int, int]) -> None:
    assert parse_color(text) == rgb


@pytest.mark.parametrize("text", ["nope", "256,0,0", "1,2", "#12345", "", "#ff000080"])
def test_parse_color_rejects_nonsense(text: str) -> None:
    with pytest.raises(OutputError):
        parse_color(text)


def test_shipped_examples_are_readable() -> None:
    sizes = {name: probe_image(EXAMPLES / f"{name}.png")[:2] for name in ("astronaut", "coffee", "chelsea")}
    assert sizes == {"astronaut": (256, 256), "coffee": (600, 400), "chelsea": (451, 300)}
    assert read_image(EXAMPLES / "astronaut.png").mode == "RGB"


def test_corrupt_exif_is_one_note_not_a_warning(tmp_path: Path) -> None:
    """Pillow warns once per unreadable EXIF tag (14 lines on stderr for one camera file): one note instead."""
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "Camera"
    data = bytearray(exif.tobytes())
    data[12:20] = b"\xff" * 8  # the first entry's type and count: nonsense
    path = tmp_path / "bad_exif.jpg"
    Image.new("RGB", (8, 6), "red").save(path, exif=bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        image = read_image(path)
    assert image.notes == ["EXIF metadata is partly corrupt; what could be read was kept"]


@pytest.mark.parametrize("samples", [
    np.zeros((6, 8, 3), np.float32),  # float RGB
    np.zeros((6, 8, 5), np.uint16),  # RGB, alpha and two more channels, 16-bit
])
def test_valid_but_unsupported_tiffs_are_called_unsupported_not_corrupt(tmp_path: Path, samples: np.ndarray) -> None:
    path = tmp_path / "odd.tif"
    extras = ["unassalpha", "unspecified"] if samples.shape[2] == 5 else None
    tifffile.imwrite(path, samples, photometric="rgb", planarconfig="contig", extrasamples=extras)
    with pytest.raises(InputError, match="valid TIFF.*not supported; supported TIFFs hold") as caught:
        read_image(path)
    assert "corrupt" not in str(caught.value)
    path.write_bytes(path.read_bytes()[:-20])  # the same file cut short is damaged, and said to be
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_image(path)
