"""`DecodedImage`: an image in memory as float pixels plus everything its file carried (bit depth, ICC, EXIF)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DecodedImage"]

_MODE_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


@dataclass
class DecodedImage:
    """An image as float pixels plus everything its file carried, so writing it back loses nothing.

    `pixels` is H×W×C float32 in [0, 1] with C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA, straight alpha).
    `bit_depth` (8 or 16) is what the source stored; writing keeps it where the format allows.
    `exif` holds EXIF (starting with b"Exif\\0\\0") whose orientation is already applied to the pixels, so the
    tag is reset to 1 and the thumbnail dropped. `notes` are human-readable remarks about conversions; writing
    appends to them what the output format could not hold. `jpeg_quality` is the source JPEG's quality, estimated
    from its quantisation tables (jpegquality.py), None for other formats: it decides which model suits it.
    """

    pixels: np.ndarray
    bit_depth: int = 8
    icc_profile: bytes | None = None
    exif: bytes | None = None
    source_format: str = ""
    notes: list[str] = field(default_factory=list)
    jpeg_quality: int | None = None

    def __post_init__(self) -> None:
        """Reject arrays that would be written as garbage (wrong rank, channel count or dtype)."""
        if self.pixels.ndim != 3 or self.pixels.shape[2] not in _MODE_BY_CHANNELS:
            raise ValueError(f"pixels must be H×W×C with C in 1..4, got shape {self.pixels.shape}")
        if not np.issubdtype(self.pixels.dtype, np.floating):
            raise ValueError(f"pixels must be floats in [0, 1], got dtype {self.pixels.dtype}")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] in (2, 4)

    @property
    def is_gray(self) -> bool:
        return self.pixels.shape[2] in (1, 2)

    @property
    def mode(self) -> str:
        """Pillow-style mode name: "L", "LA", "RGB" or "RGBA"."""
        return _MODE_BY_CHANNELS[self.pixels.shape[2]]
