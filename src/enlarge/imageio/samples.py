"""Integer samples ↔ float pixels in [0, 1]: the one place 8- and 16-bit ranges are scaled."""

from __future__ import annotations

import numpy as np

MAX_8_BIT = 255
MAX_16_BIT = 65_535
RGB_CHANNELS = 3


def to_unit_float(samples: np.ndarray, max_value: int) -> np.ndarray:
    """Integer samples as float32 in [0, 1], `max_value` mapping to 1."""
    pixels = samples.astype(np.float32)
    pixels /= max_value
    return pixels


def quantise(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Round [0, 1] floats to 8- or 16-bit integers (values outside the range are clipped)."""
    max_value, dtype = (MAX_16_BIT, np.uint16) if bit_depth == 16 else (MAX_8_BIT, np.uint8)
    scaled = np.clip(pixels, 0.0, 1.0).astype(np.float32, copy=False) * max_value
    return np.rint(scaled, out=scaled).astype(dtype)
