"""Colours given as text (the background to flatten transparency onto) → an opaque 8-bit RGB triple."""

from __future__ import annotations

from PIL import ImageColor

from enlarge.errors import OutputError
from enlarge.imageio.samples import MAX_8_BIT, RGB_CHANNELS

__all__ = ["parse_color"]


def parse_color(text: str) -> tuple[int, int, int]:
    """Parse a background colour: a name ("white"), hex ("#ffffff", "#fff") or "R,G,B" with 0-255 values."""
    problem = f"invalid colour {text!r}: use a name like white, a hex value like #ffffff, or R,G,B from 0 to 255"
    parts = text.split(",")
    if len(parts) == RGB_CHANNELS:
        try:
            red, green, blue = (int(part) for part in parts)
        except ValueError:
            raise OutputError(problem) from None
        if not all(0 <= value <= MAX_8_BIT for value in (red, green, blue)):
            raise OutputError(problem)
        return red, green, blue
    try:
        rgb = ImageColor.getrgb(text.strip())
    except ValueError:
        raise OutputError(problem) from None
    if len(rgb) > RGB_CHANNELS and rgb[RGB_CHANNELS] != MAX_8_BIT:
        raise OutputError(f"background colour {text!r} is not opaque; give an opaque colour such as white")
    return rgb[0], rgb[1], rgb[2]
