"""Reading: a file or upload → `DecodedImage`, by the decoder that keeps every bit, after the size limit and the
still-image check; `probe_image` gives the size from the header alone."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from enlarge.errors import ImageTooLargeError, InputError
from enlarge.imageio.decoded import DecodedImage
from enlarge.imageio.exif import ORIENTATIONS_SWAPPING_AXES, UPRIGHT, read_exif, turn_upright
from enlarge.imageio.messages import corrupt_message
from enlarge.imageio.pillow import decode_with_pillow, open_pillow, strict_pillow
from enlarge.imageio.png16 import decode_png16, is_16_bit_png
from enlarge.imageio.signatures import read_head
from enlarge.imageio.tiff import decode_deep_tiff, stored_tiff_size, tiff_bits_per_sample
from enlarge.jpegquality import jpeg_quality

__all__ = ["DEFAULT_MAX_INPUT_PIXELS", "decode_image_bytes", "probe_image", "read_image"]

DEFAULT_MAX_INPUT_PIXELS = 100_000_000
"""Largest input (width × height) decoded by default: a guard against decompression bombs."""


def probe_image(path: str | Path) -> tuple[int, int, str]:
    """Return (width, height, format) as `read_image` would give them, from the header only (no pixel decode).

    Width and height are those after the EXIF rotation `read_image` applies.
    """
    path = Path(path)
    name = str(path)
    with _open_input(path) as stream, strict_pillow():
        head = read_head(stream, name)
        with open_pillow(stream, name, head) as im:
            width, height = _stored_size(im)
            _, orientation = read_exif(im, [])
            fmt = _source_format(im)
    if orientation in ORIENTATIONS_SWAPPING_AXES:
        width, height = height, width
    return width, height, fmt


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> DecodedImage:
    """Decode an image file completely (alpha, 16 bits, ICC, EXIF), refusing inputs above `max_pixels`."""
    path = Path(path)
    with _open_input(path) as stream:
        return _decode(stream, str(path), max_pixels)


def decode_image_bytes(
    data: bytes, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS, name: str = "upload"
) -> DecodedImage:
    """Decode an image held in memory (an upload), like `read_image`; `name` is used in error messages."""
    return _decode(io.BytesIO(data), name, max_pixels)


@contextmanager
def _open_input(path: Path) -> Iterator[BinaryIO]:
    """Open an input file for binary reading, turning every way that can fail into one clear InputError."""
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image file; pass the path of an image file")
    try:
        stream = path.open("rb")
    except FileNotFoundError as exc:
        raise InputError(f"input file not found: {path}; check the path") from exc
    except PermissionError as exc:
        raise InputError(f"cannot read {path}: permission denied; check the file's permissions") from exc
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror or exc}; check the path") from exc
    with stream:
        yield stream


def _decode(stream: BinaryIO, name: str, max_pixels: int) -> DecodedImage:
    """Header → size limit → still-image check → pixels (by the decoder that keeps all bits) → metadata."""
    notes: list[str] = []
    with strict_pillow(notes):
        head = read_head(stream, name)
        with open_pillow(stream, name, head) as im:
            _check_pixel_limit(im.size, name, max_pixels)
            _check_still(im, name, notes)
            exif, orientation = read_exif(im, notes)  # from the header: Pillow drops a TIFF's tag once it loads
            icc = im.info.get("icc_profile") or None
            pixels, bit_depth, icc = _decode_upright(im, stream, head, name, icc, orientation, notes)
            fmt = _source_format(im)
            quality = jpeg_quality(im)
    if orientation != UPRIGHT:
        notes.append(f"turned upright as its EXIF orientation ({orientation}) asked")
    return DecodedImage(pixels, bit_depth, icc, exif, fmt, notes, quality)


def _stored_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) as stored, before any EXIF turn (recent Pillows report a TIFF's size already turned)."""
    if im.format == "TIFF":
        return stored_tiff_size(im)
    return im.size


def _check_pixel_limit(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {width}x{height} = {width * height:,} pixels, above the input limit of {max_pixels:,}; "
            "raise the input limit only if you trust this file",
            setting="max_input_mp",
        )


def _check_still(im: Image.Image, name: str, notes: list[str]) -> None:
    """Refuse animations and multi-page files; a camera's multi-picture JPEG keeps its primary image."""
    try:
        frames = getattr(im, "n_frames", 1)
    except Exception as exc:  # counting frames parses them: a broken one is a bad file
        raise InputError(corrupt_message(name, exc)) from exc
    if frames <= 1:
        return
    if im.format == "MPO":
        notes.append(f"multi-picture JPEG ({frames} pictures): used the primary image")
    elif im.format == "TIFF":
        raise InputError(f"{name} has {frames} pages; only single-image files are supported: save one page alone")
    else:
        raise InputError(
            f"{name} is animated ({frames} frames); only still images are supported: export one frame as PNG"
        )


def _source_format(im: Image.Image) -> str:
    """Pillow's format name, with a multi-picture JPEG reported as the JPEG it is."""
    return "JPEG" if im.format == "MPO" else str(im.format)


def _decode_upright(
    im: Image.Image, stream: BinaryIO, head: bytes, name: str, icc: bytes | None, orientation: int, notes: list[str]
) -> tuple[np.ndarray, int, bytes | None]:
    """Decode with what keeps every bit (pypng for 16-bit PNG, tifffile for deep TIFF, Pillow otherwise) and
    turn the pixels upright, except where Pillow's TIFF loader has already done so (it has since Pillow 7)."""
    if im.format == "PNG" and is_16_bit_png(head):
        return turn_upright(decode_png16(stream, name), orientation), 16, icc
    if im.format == "TIFF" and tiff_bits_per_sample(im) > 8:
        deep = decode_deep_tiff(stream, name, notes)
        if deep is not None:
            return turn_upright(deep, orientation), 16, icc
        pixels, bit_depth, icc = decode_with_pillow(im, name, icc, notes)
        if bit_depth == 8:
            notes.append(
                "read as 8-bit: this TIFF's compression needs the imagecodecs package to keep its 16 bits "
                "(pip install imagecodecs)"
            )
        return pixels, bit_depth, icc
    pixels, bit_depth, icc = decode_with_pillow(im, name, icc, notes)
    if im.format != "TIFF":
        pixels = turn_upright(pixels, orientation)
    return pixels, bit_depth, icc
