"""EXIF: which tags are carried over (descriptive ones only), and the orientation that turns pixels upright."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import ExifTags, Image

EXIF_HEADER = b"Exif\x00\x00"
UPRIGHT = 1
_ORIENTATION_TAG = ExifTags.Base.Orientation
_EXIF_SUB_IFDS = (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo)
# Descriptive IFD0 tags only: the rest (strip offsets, sample layout, XMP, Photoshop data with its own thumbnail)
# describes the source file's encoding and would be wrong in any other file.
_EXIF_IFD0_KEPT = frozenset(
    {
        ExifTags.Base.ImageDescription,
        ExifTags.Base.Make,
        ExifTags.Base.Model,
        ExifTags.Base.Orientation,
        ExifTags.Base.XResolution,
        ExifTags.Base.YResolution,
        ExifTags.Base.ResolutionUnit,
        ExifTags.Base.Software,
        ExifTags.Base.DateTime,
        ExifTags.Base.Artist,
        ExifTags.Base.HostComputer,
        ExifTags.Base.Copyright,
    }
)
# EXIF orientation → the transform that makes the pixels upright (rows are y, columns are x).
_ORIENTATION_TRANSFORMS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),
}
ORIENTATIONS_SWAPPING_AXES = frozenset({5, 6, 7, 8})


def read_exif(im: Image.Image, notes: list[str]) -> tuple[bytes | None, int]:
    """Return (EXIF to carry over, orientation): descriptive tags and sub-IFDs, orientation reset, no thumbnail."""
    try:
        source = _source_exif(im)
        orientation = source.get(_ORIENTATION_TAG, UPRIGHT)
        kept = Image.Exif()
        for tag in _EXIF_IFD0_KEPT.intersection(source):
            kept[tag] = source[tag]
        for ifd in _EXIF_SUB_IFDS:
            sub = dict(source.get_ifd(ifd)) if ifd in source else {}
            if ExifTags.IFD.Interop in sub:
                sub[ExifTags.IFD.Interop] = source.get_ifd(ExifTags.IFD.Interop)
            if sub:
                kept[ifd] = sub
        if _ORIENTATION_TAG in kept:
            kept[_ORIENTATION_TAG] = UPRIGHT
        exif = kept.tobytes() if len(kept) else None
    except Exception:  # metadata is a bonus: malformed EXIF must not cost the user the image
        notes.append("EXIF metadata was malformed and was dropped")
        return None, UPRIGHT
    if orientation != UPRIGHT and orientation not in _ORIENTATION_TRANSFORMS:
        notes.append(f"ignored an invalid EXIF orientation ({orientation})")
        orientation = UPRIGHT
    return exif, orientation


def _source_exif(im: Image.Image) -> Image.Exif:
    """The file's EXIF from its header (Pillow's PNG getexif would decode the whole image for a late eXIf chunk)."""
    if im.format != "PNG":
        return im.getexif()
    exif = Image.Exif()
    raw = im.info.get("exif")
    if raw:
        exif.load(raw)
    return exif


def turn_upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels as seen upright, for an orientation `read_exif` accepted."""
    if orientation == UPRIGHT:
        return pixels
    return np.ascontiguousarray(_ORIENTATION_TRANSFORMS[orientation](pixels))
