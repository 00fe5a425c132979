"""A JPEG's quality, read back from its quantisation tables.

Encoders built on libjpeg (Pillow, ImageMagick, most phones' and web pages' software) make their tables by scaling
the example tables of the JPEG standard (ITU-T T.81, Annex K) with IJG's rule: quality q in 1..100 becomes a
percentage `5000 / q` below 50 and `200 - 2q` from 50 up, each entry `(base · percentage + 50) // 100` clamped to
1..255 (baseline). So the tables of such a file name its quality exactly: the q whose scaled tables equal them.
Other encoders (cameras, Photoshop) use tables of their own; for those the nearest q in least squares over every
table entry is the estimate, which orders files by how hard they were compressed just as well.

Pillow gives the tables of an open JPEG as `image.quantization`: table id → 64 entries in natural (row-major)
order; table 0 quantises luminance, the others chrominance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

import numpy as np
from PIL import Image

QUALITIES = range(1, 101)
HALF_QUALITY = 50  # IJG's rule changes form here
PERCENT = 100
MAX_BASELINE_ENTRY = 255
LUMINANCE_TABLE = 0
TABLE_ENTRIES = 64
JPEG_FORMATS = frozenset({"JPEG", "MPO"})  # a camera's multi-picture JPEG is a JPEG with more pictures

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), natural order.
STANDARD_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
STANDARD_CHROMINANCE = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
) + (99,) * 32  # fmt: skip


def ijg_percentage(quality: int) -> int:
    """IJG's scaling percentage for `quality` (libjpeg's `jpeg_quality_scaling`)."""
    if not 1 <= quality <= QUALITIES[-1]:
        raise ValueError(f"JPEG quality must be in 1..{QUALITIES[-1]}, got {quality}")
    return 5000 // quality if quality < HALF_QUALITY else 200 - 2 * quality


def scaled_table(base: Sequence[int], quality: int) -> np.ndarray:
    """The baseline table libjpeg writes for `base` at `quality`."""
    scaled = (np.asarray(base, dtype=np.int64) * ijg_percentage(quality) + PERCENT // 2) // PERCENT
    return np.clip(scaled, 1, MAX_BASELINE_ENTRY)


@cache
def _standard_tables() -> tuple[np.ndarray, np.ndarray]:
    """Every quality's luminance and chrominance tables: two arrays of shape (100, 64), row q-1 for quality q."""
    luminance = np.stack([scaled_table(STANDARD_LUMINANCE, q) for q in QUALITIES])
    chrominance = np.stack([scaled_table(STANDARD_CHROMINANCE, q) for q in QUALITIES])
    return luminance, chrominance


def estimate_quality(tables: Mapping[int, Sequence[int]]) -> int:
    """The IJG quality whose standard tables are nearest to `tables` (id → 64 entries, natural order) in least
    squares over every entry: exactly the quality of an IJG-made file, the nearest one for any other."""
    if not tables or any(len(table) != TABLE_ENTRIES for table in tables.values()):
        raise ValueError(f"quantisation tables must each have {TABLE_ENTRIES} entries")
    luminance, chrominance = _standard_tables()
    error = np.zeros(len(QUALITIES))
    for table_id, table in tables.items():
        reference = luminance if table_id == LUMINANCE_TABLE else chrominance
        error += ((reference - np.asarray(table, dtype=np.int64)) ** 2).sum(axis=1)
    return QUALITIES[int(np.argmin(error))]  # ties go to the lower quality, the more cautious reading


def jpeg_quality(image: Image.Image) -> int | None:
    """The estimated quality of an open Pillow JPEG; None for any other format or a JPEG without tables."""
    tables = getattr(image, "quantization", None) if image.format in JPEG_FORMATS else None
    if not tables:
        return None
    try:
        return estimate_quality(tables)
    except ValueError:  # a malformed table: nothing to read the quality from
        return None
