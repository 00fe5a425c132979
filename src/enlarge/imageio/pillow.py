"""The Pillow interface: its process-wide settings under a lock, opening (with plugins where a format needs one),
8-bit decoding to L/LA/RGB/RGBA, and 8-bit encoding of every output format."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from enlarge.errors import InputError
from enlarge.imageio.icc import cmyk_to_rgb
from enlarge.imageio.messages import add_note, corrupt_message, decoder_logs, detail
from enlarge.imageio.samples import MAX_8_BIT, MAX_16_BIT, to_unit_float
from enlarge.imageio.signatures import TIFF_SIGNATURES, has_known_signature, heif_kind
from enlarge.imageio.tiff import refuse_valid_tiff

# Pillow mode → the mode we hand over, for images without transparency; those with it get an alpha channel.
_PILLOW_TARGET_MODE = {
    "1": "L",
    "L": "L",
    "LA": "LA",
    "La": "LA",
    "P": "RGB",
    "PA": "RGBA",
    "RGB": "RGB",
    "RGBX": "RGB",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "YCbCr": "RGB",
    "HSV": "RGB",
}
_WITH_ALPHA = {"L": "LA", "RGB": "RGBA"}
_PILLOW_16_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_JPEG_SUBSAMPLING_444 = 0  # full-resolution chroma: halving it would throw away the detail we just made
_TIFF_PILLOW_COMPRESSION = "tiff_adobe_deflate"
_EXIF_WARNING = "Corrupt EXIF data"  # the start of Pillow's warning for each EXIF tag it cannot read

_PILLOW_SETTINGS_LOCK = threading.Lock()
_PILLOW_LOGGER = "PIL"  # the parent of every Pillow plugin's logger


@contextmanager
def strict_pillow(notes: list[str] | None = None) -> Iterator[None]:
    """Run Pillow with its own pixel limit lifted, truncated data always an error, and its warnings caught.

    Our limit, checked from the header first, replaces Pillow's (whose error or warning would otherwise leak
    with its own wording and threshold), and truncated files must fail rather than be padded with grey. Both are
    process-wide Pillow settings, so they change only under a lock and are restored afterwards. What Pillow warns
    about (corrupt EXIF, say, once per bad tag) or logs becomes one note each in `notes`, never text on stderr.
    """
    with _PILLOW_SETTINGS_LOCK, warnings.catch_warnings(record=True) as caught, decoder_logs(_PILLOW_LOGGER) as logged:
        warnings.simplefilter("always")
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved
            if notes is not None:
                for message in [str(warning.message) for warning in caught] + logged:
                    add_note(notes, _warning_note(message))


def _warning_note(message: str) -> str:
    """One note for a decoder warning: every corrupt-EXIF warning is the same note."""
    if _EXIF_WARNING in message:
        return "EXIF metadata is partly corrupt; what could be read was kept"
    return f"decoder warning: {detail(Exception(message))}"


def open_pillow(stream: BinaryIO, name: str, head: bytes) -> Image.Image:
    """Open the header with Pillow (no pixel decode), explaining formats that need a plugin."""
    try:
        return Image.open(stream)
    except UnidentifiedImageError as exc:
        if head.startswith(TIFF_SIGNATURES):
            refuse_valid_tiff(stream, name)
        if has_known_signature(head):  # a known format Pillow could not parse: its header is cut short or broken
            raise InputError(corrupt_message(name, exc)) from exc
        heif = heif_kind(head)
        if heif is None:
            raise InputError(
                f"{name} is not an image in a supported format; use PNG, JPEG, WEBP, TIFF, BMP or GIF"
            ) from exc
        if _register_heif_plugin():
            stream.seek(0)
            return _open_pillow_once_more(stream, name)
        kind, hint = heif
        raise InputError(f"{name} is {kind}, which this installation cannot decode: {hint}, or convert it") from exc
    except Exception as exc:  # any decoder failure on untrusted bytes means a bad file, never a crash
        raise InputError(corrupt_message(name, exc)) from exc


def _open_pillow_once_more(stream: BinaryIO, name: str) -> Image.Image:
    """Open again after registering a plugin; a second failure is a corrupt file."""
    try:
        return Image.open(stream)
    except Exception as exc:  # any decoder failure on untrusted bytes means a bad file, never a crash
        raise InputError(corrupt_message(name, exc)) from exc


def _register_heif_plugin() -> bool:
    """Register pillow-heif's opener with Pillow if that plugin is installed; True when it was."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def decode_with_pillow(
    im: Image.Image, name: str, icc: bytes | None, notes: list[str]
) -> tuple[np.ndarray, int, bytes | None]:
    """Decode with Pillow and bring any mode to L/LA/RGB/RGBA (or 16-bit L); CMYK becomes RGB."""
    try:
        im.load()
    except Exception as exc:  # any decoder failure on untrusted bytes means a bad file, never a crash
        raise InputError(corrupt_message(name, exc)) from exc
    mode = im.mode
    if mode in _PILLOW_16_BIT_MODES:
        samples = np.clip(np.asarray(im), 0, MAX_16_BIT)
        return to_unit_float(samples[..., np.newaxis], MAX_16_BIT), 16, icc
    if mode == "CMYK":
        im, icc = cmyk_to_rgb(im, icc, notes)
        mode = im.mode
    target = _PILLOW_TARGET_MODE.get(mode)
    if target is None:
        raise InputError(f"{name} has pixel format {mode}, which is not supported; convert it to RGB or grayscale")
    if im.has_transparency_data:
        target = _WITH_ALPHA.get(target, target)
    if target != mode:
        im = im.convert(target)
    samples = np.asarray(im)
    if samples.ndim == 2:
        samples = samples[..., np.newaxis]
    return to_unit_float(samples, MAX_8_BIT), 8, icc


def write_with_pillow(
    stream: BinaryIO, samples: np.ndarray, fmt: str, quality: int, icc: bytes | None, exif: bytes | None
) -> None:
    """8-bit output of any format through Pillow."""
    im = Image.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples)
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options.update(quality=quality, subsampling=_JPEG_SUBSAMPLING_444)
    elif fmt == "WEBP":
        options.update(quality=quality, exact=True)  # exact: keep colour under fully transparent pixels
    elif fmt == "TIFF":
        options.update(compression=_TIFF_PILLOW_COMPRESSION)
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    im.save(stream, format=fmt, **options)
