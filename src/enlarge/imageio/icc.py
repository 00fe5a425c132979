"""ICC profiles: keep one only where it describes the output's colour space; bring CMYK to sRGB through one."""

from __future__ import annotations

import io

from PIL import Image, ImageCms

from enlarge.imageio.decoded import DecodedImage
from enlarge.imageio.messages import add_note
from enlarge.imageio.samples import RGB_CHANNELS

_ICC_COLOUR_SPACE = slice(16, 20)
_ICC_GRAY = b"GRAY"
_ICC_RGB = b"RGB "


def matching_icc(image: DecodedImage, channels: int) -> bytes | None:
    """The ICC profile if it describes the output's colour space (gray or RGB); a mismatched one is dropped."""
    icc = image.icc_profile
    if not icc:
        return None
    wanted = _ICC_GRAY if channels < RGB_CHANNELS else _ICC_RGB
    space = icc[_ICC_COLOUR_SPACE]
    if space != wanted:
        described = space.decode("latin-1").strip() or "unknown"
        output = "grayscale" if wanted == _ICC_GRAY else "RGB"
        add_note(image.notes, f"ICC profile dropped: it describes {described} colour but the output is {output}")
        return None
    return icc


def cmyk_to_rgb(im: Image.Image, icc: bytes | None, notes: list[str]) -> tuple[Image.Image, bytes | None]:
    """Convert CMYK to RGB: through its ICC profile to sRGB when it has a usable one, else Pillow's formula."""
    if icc is not None:
        try:
            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            rgb = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            notes.append("CMYK converted to RGB; its ICC profile was unusable, so colours are approximate")
            return im.convert("RGB"), None
        notes.append("CMYK converted to RGB (sRGB) through its ICC profile")
        return rgb, srgb.tobytes()
    notes.append("CMYK converted to RGB without an ICC profile, so colours are approximate")
    return im.convert("RGB"), None
