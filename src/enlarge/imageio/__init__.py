"""Image files in and out without losing what they carry: alpha, 16-bit samples, ICC profile and EXIF.

Reading turns a file into a `DecodedImage` (float32 pixels in [0, 1] plus metadata); writing turns one back into
a file, atomically. Pillow decodes most formats, but it reduces 16-bit colour to 8 bits, so 16-bit PNGs go through
pypng and 16-bit TIFFs through tifffile. Every failure a user can cause is raised as an `InputError`,
`ImageTooLargeError` or `OutputError` whose message says what was wrong and what to do.

One module per concept: `decoded` (DecodedImage) · `reading` (files and uploads in, limits, probe) · `writing`
(files and bytes out, what each format holds) · `pillow` (the Pillow interface) · `png16` (16-bit PNG, pypng) ·
`tiff` (deep TIFF, tifffile) · `exif` (kept tags, orientation) · `icc` (profiles, CMYK) · `signatures` (sniffing
the first bytes) · `samples` (integers ↔ [0, 1] floats) · `messages` (shared wording, notes) · `colors`
(background colours).
"""

from __future__ import annotations

from enlarge.imageio.colors import parse_color
from enlarge.imageio.decoded import DecodedImage
from enlarge.imageio.reading import DEFAULT_MAX_INPUT_PIXELS, decode_image_bytes, probe_image, read_image
from enlarge.imageio.writing import DEFAULT_QUALITY, SUPPORTED_OUTPUT_EXTENSIONS, encode_image_bytes, write_image

__all__ = [
    "DEFAULT_MAX_INPUT_PIXELS",
    "DEFAULT_QUALITY",
    "SUPPORTED_OUTPUT_EXTENSIONS",
    "DecodedImage",
    "decode_image_bytes",
    "encode_image_bytes",
    "parse_color",
    "probe_image",
    "read_image",
    "write_image",
]
