"""Folders of plain 8-bit images, as training, calibration and evaluation read them: listed recursively in a fixed
order and decoded to RGB pixels.

One listing and one decoder for all of them, so a training image and a benchmark image are read alike. User files
go through `imageio` instead, which keeps alpha, 16-bit depth, ICC and EXIF; these folders need only 8-bit RGB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from enlarge.errors import InputError
from enlarge.formats import FOLDER_EXTENSIONS

IMAGE_SUFFIXES = FOLDER_EXTENSIONS
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})  # Pillow modes that convert to RGB exactly


def find_images(folder: Path) -> list[Path]:
    """Image files (IMAGE_SUFFIXES, any case) under `folder`, recursively, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_rgb8(path: Path) -> np.ndarray:
    """An 8-bit image file as an H×W×3 uint8 array (grayscale replicated, alpha dropped).

    InputError if it cannot be decoded, or if it is not 8-bit: converting 16-bit or float pixels to RGB would
    silently clip them.
    """
    try:
        with Image.open(path) as image:
            if image.mode not in EIGHT_BIT_MODES:
                raise InputError(f"{path}: mode {image.mode} is not 8-bit; image folders are read as 8-bit RGB")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None
