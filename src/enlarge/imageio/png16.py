"""16-bit PNG through pypng, both ways: Pillow would reduce its colour to 8 bits."""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO

import numpy as np
import png

from enlarge.errors import InputError
from enlarge.imageio.exif import EXIF_HEADER
from enlarge.imageio.messages import corrupt_message
from enlarge.imageio.samples import MAX_16_BIT, RGB_CHANNELS, to_unit_float

_PNG_BIT_DEPTH_OFFSET = 24  # signature (8) + IHDR length (4) + b"IHDR" (4) + width (4) + height (4)
_PNG_IHDR_END = 33  # signature (8) + IHDR chunk (4 + 4 + 13 + 4)
_PNG_ICC_NAME = b"ICC profile"
_PNG_ZLIB_METHOD = b"\x00"


def is_16_bit_png(head: bytes) -> bool:
    """Whether a PNG's first bytes (its IHDR) say 16 bits per sample."""
    return head[_PNG_BIT_DEPTH_OFFSET] == 16


def decode_png16(stream: BinaryIO, name: str) -> np.ndarray:
    """Decode a 16-bit PNG with pypng, all 16 bits kept; a tRNS colour key becomes an alpha channel."""
    stream.seek(0)
    try:
        width, height, rows, info = png.Reader(file=stream).read()
        planes = info["planes"]
        samples = np.empty((height, width * planes), dtype=np.uint16)
        for y, row in enumerate(rows):
            samples[y] = row
    except Exception as exc:  # any decoder failure on untrusted bytes means a bad file, never a crash
        raise InputError(corrupt_message(name, exc)) from exc
    samples = samples.reshape(height, width, planes)
    key = info.get("transparent")
    if key is not None and not info["alpha"]:
        opaque = np.any(samples != np.asarray(key, dtype=np.uint16), axis=2, keepdims=True)
        samples = np.concatenate([samples, opaque.astype(np.uint16) * MAX_16_BIT], axis=2)
    return to_unit_float(samples, MAX_16_BIT)


def write_png16(stream: BinaryIO, samples: np.ndarray, icc: bytes | None, exif: bytes | None) -> None:
    """16-bit PNG through pypng, with iCCP and eXIf chunks placed right after IHDR (pypng writes neither)."""
    height, width, channels = samples.shape
    writer = png.Writer(width, height, greyscale=channels < RGB_CHANNELS, alpha=channels in (2, 4), bitdepth=16)
    encoded = io.BytesIO()
    writer.write_packed(encoded, (row.astype(">u2").tobytes() for row in samples.reshape(height, width * channels)))
    data = encoded.getbuffer()
    stream.write(data[:_PNG_IHDR_END])
    if icc:
        png.write_chunk(stream, b"iCCP", _PNG_ICC_NAME + b"\x00" + _PNG_ZLIB_METHOD + zlib.compress(icc))
    if exif:
        png.write_chunk(stream, b"eXIf", exif.removeprefix(EXIF_HEADER))
    stream.write(data[_PNG_IHDR_END:])
