"""Writing: a `DecodedImage` → a file (atomically) or bytes, fitted to what the format can hold (each loss noted)
and encoded by the writer that keeps every bit (pypng for 16-bit PNG, tifffile for 16-bit TIFF, Pillow otherwise)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
import png

from enlarge.errors import OutputError
from enlarge.fileutil import TempFileError, atomic_file
from enlarge.formats import FORMAT_ALIASES, FORMAT_BY_EXTENSION, OUTPUT_EXTENSIONS
from enlarge.imageio import pillow  # by module, so a test can stand in for its writer
from enlarge.imageio.decoded import DecodedImage
from enlarge.imageio.icc import matching_icc
from enlarge.imageio.messages import add_note, detail
from enlarge.imageio.png16 import write_png16
from enlarge.imageio.samples import MAX_8_BIT, RGB_CHANNELS, quantise
from enlarge.imageio.tiff import write_tiff16

__all__ = ["DEFAULT_QUALITY", "SUPPORTED_OUTPUT_EXTENSIONS", "encode_image_bytes", "write_image"]

DEFAULT_QUALITY = 95
"""JPEG/WEBP quality used when none is given: high, since enlarged detail is what the user is after."""

SUPPORTED_OUTPUT_EXTENSIONS = OUTPUT_EXTENSIONS
_HOLDS_16_BIT = frozenset({"PNG", "TIFF"})
_HOLDS_ALPHA = frozenset({"PNG", "WEBP", "TIFF"})
_HOLDS_GRAY = frozenset({"PNG", "JPEG", "TIFF"})
_MAX_SIDE = {"JPEG": 65_500, "WEBP": 16_383}  # libjpeg's and libwebp's largest width or height
_JPEG_MAX_EXIF_BYTES = 65_533  # one APP1 marker segment
_MIN_QUALITY, _MAX_QUALITY = 1, 100


def encode_image_bytes(
    image: DecodedImage,
    format: str,
    quality: int | None = None,
    background: tuple[int, int, int] | None = None,
) -> bytes:
    """Encode to PNG, JPEG, WEBP or TIFF in memory; see `write_image` for quality, background and notes."""
    buffer = io.BytesIO()
    _encode(buffer, image, _format_from_name(format), quality, background)
    return buffer.getvalue()


def write_image(
    path: str | Path,
    image: DecodedImage,
    quality: int | None = None,
    background: tuple[int, int, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `image` atomically in the format its extension names, keeping 16 bits, alpha, ICC and EXIF
    where the format can hold them. Returns the path written.

    `quality` (1-100, default 95) is for JPEG and WEBP. `background` flattens transparency onto that colour; JPEG
    needs it for images with alpha. What the format could not hold (16 bits in JPEG, say) is appended to
    `image.notes`. The file appears complete or not at all, and an existing one is replaced only if `overwrite`.
    """
    path = Path(path)
    fmt = _format_from_path(path)
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it first or choose another path")
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name ending in {', '.join(SUPPORTED_OUTPUT_EXTENSIONS)}")
    if path.exists() and not overwrite:
        raise OutputError.exists(path)
    try:
        with atomic_file(path, overwrite=overwrite) as stream:
            _encode(stream, image, fmt, quality, background)
    except FileExistsError:
        raise OutputError.exists(path) from None
    except TempFileError as exc:
        if exc.permission_denied:
            raise OutputError(f"cannot write to folder {folder}: permission denied; choose a writable folder") from exc
        raise OutputError(f"cannot create a file in {folder}: {exc.strerror or exc}; choose another folder") from exc
    except OSError as exc:
        raise OutputError(f"could not write {path}: {exc.strerror or exc}; check free space and permissions") from exc
    return path


def _format_from_path(path: Path) -> str:
    fmt = FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(
            f"cannot write {path.name}: unsupported extension {path.suffix or '(none)'}; "
            f"use one of {', '.join(SUPPORTED_OUTPUT_EXTENSIONS)}"
        )
    return fmt


def _format_from_name(name: str) -> str:
    fmt = FORMAT_ALIASES.get(name.strip().lstrip(".").upper())
    if fmt is None:
        raise OutputError(f"unsupported output format {name!r}; use png, jpeg, webp or tiff")
    return fmt


def _encode(
    stream: BinaryIO,
    image: DecodedImage,
    fmt: str,
    quality: int | None,
    background: tuple[int, int, int] | None,
) -> None:
    """Fit the image to what `fmt` can hold (noting each loss in `image.notes`) and encode it into `stream`."""
    quality = _checked_quality(quality)
    _check_side_limit(image, fmt)
    pixels = image.pixels
    if image.has_alpha and background is not None:
        pixels = _flatten(pixels, background)
    elif image.has_alpha and fmt not in _HOLDS_ALPHA:
        raise OutputError(
            f"the image has transparency, which {fmt} cannot store: give a background colour to flatten it onto, "
            "or choose .png",
            setting="background",
        )
    if pixels.shape[2] < RGB_CHANNELS and fmt not in _HOLDS_GRAY:
        pixels = np.concatenate([np.repeat(pixels[..., :1], RGB_CHANNELS, axis=2), pixels[..., 1:]], axis=2)
    bit_depth = image.bit_depth
    if bit_depth == 16 and fmt not in _HOLDS_16_BIT:
        add_note(
            image.notes, f"16-bit reduced to 8-bit: {fmt} stores 8 bits per channel (choose .png or .tiff to keep 16)"
        )
        bit_depth = 8
    icc = matching_icc(image, pixels.shape[2])
    exif = image.exif
    if exif and fmt == "JPEG" and len(exif) > _JPEG_MAX_EXIF_BYTES:
        add_note(image.notes, "EXIF dropped: it is larger than one JPEG marker can hold")
        exif = None
    samples = quantise(pixels, bit_depth)
    try:
        if bit_depth == 16 and fmt == "PNG":
            write_png16(stream, samples, icc, exif)
        elif bit_depth == 16:
            if exif:
                add_note(image.notes, "EXIF not written: 16-bit TIFF output carries no EXIF (choose .png to keep it)")
            write_tiff16(stream, samples, icc)
        else:
            pillow.write_with_pillow(stream, samples, fmt, quality, icc, exif)
    except (ValueError, OSError, png.Error) as exc:
        raise OutputError(f"could not encode the image as {fmt} ({detail(exc)})") from exc


def _checked_quality(quality: int | None) -> int:
    if quality is None:
        return DEFAULT_QUALITY
    if isinstance(quality, bool) or not isinstance(quality, int) or not _MIN_QUALITY <= quality <= _MAX_QUALITY:
        raise OutputError(f"quality must be a whole number from {_MIN_QUALITY} to {_MAX_QUALITY}, got {quality!r}")
    return quality


def _check_side_limit(image: DecodedImage, fmt: str) -> None:
    limit = _MAX_SIDE.get(fmt)
    if limit is not None and max(image.width, image.height) > limit:
        raise OutputError(
            f"the image is {image.width}x{image.height}, but {fmt} holds at most {limit} pixels per side; "
            "choose .png or .tiff"
        )


def _flatten(pixels: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Composite straight-alpha pixels over an opaque colour; gray stays gray only on a gray background."""
    colour, alpha = pixels[..., :-1], pixels[..., -1:]
    backdrop = np.asarray(background, dtype=np.float32) / MAX_8_BIT
    if colour.shape[2] == 1:
        if np.all(backdrop == backdrop[0]):
            backdrop = backdrop[:1]
        else:
            colour = np.repeat(colour, RGB_CHANNELS, axis=2)
    return (colour * alpha + backdrop * (1.0 - alpha)).astype(np.float32)
