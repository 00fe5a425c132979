"""Pixel arrays around the model: resampling (Lanczos, box), gray ↔ RGB, and padding onto a canvas.

Arrays are H×W×C float32 in [0, 1]; sizes are (width, height) as in `sizing`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from enlarge.sizing import Box, Size

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec. 601, to turn a background colour into a gray level
RGB = 3
MAX_8_BIT = 255  # colours (background, padding) are given as 0-255 RGB

Color = tuple[int, int, int]


def lanczos(pixels: np.ndarray, size: Size) -> np.ndarray:
    """Antialiased Lanczos resize of an H×W×C float array to `size` (width, height)."""
    return resample(pixels, size, Image.Resampling.LANCZOS)


def resample(pixels: np.ndarray, size: Size, method: Image.Resampling) -> np.ndarray:
    """Resize an H×W×C float array to `size` (width, height) with Pillow's `method`, one float plane at a time."""
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., c], dtype=np.float32)).resize(size, method))
        for c in range(pixels.shape[-1])
    ]
    return np.stack(planes, axis=-1)


def to_rgb(channels: np.ndarray) -> np.ndarray:
    """H×W×1 → H×W×3 (replicated); H×W×3 unchanged."""
    return np.repeat(channels, RGB, axis=-1) if channels.shape[-1] == 1 else channels


def pad(pixels: np.ndarray, box: Box, size: Size, has_alpha: bool, background: Color) -> np.ndarray:
    """Place `pixels` at `box` on a `size` canvas: transparent with alpha, else `background` (gray for L)."""
    channels = pixels.shape[-1]
    canvas = np.zeros((size[1], size[0], channels), dtype=np.float32)
    if not has_alpha:
        rgb = np.asarray(background, dtype=np.float32) / MAX_8_BIT
        canvas[:] = float(rgb @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)) if channels == 1 else rgb
    canvas[box.top : box.bottom, box.left : box.right] = pixels
    return canvas
