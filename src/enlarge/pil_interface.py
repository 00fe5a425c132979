"""The one-call API for PIL images: `enlarge.upscale(image, scale=2.5)`, a PIL image or file in, a PIL image out.

It plans the size, shares loaded `Upscaler`s between calls (the last SHARED_UPSCALERS settings used), and converts
between PIL images and `DecodedImage` so a PIL image goes through the same reader rules as a file.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image

from enlarge.errors import InputError
from enlarge.imageio.decoded import DecodedImage
from enlarge.imageio.reading import decode_image_bytes, read_image
from enlarge.jpegquality import jpeg_quality
from enlarge.pixels import MAX_8_BIT
from enlarge.sizing import DEFAULT_FIT, Size, SizeRequest
from enlarge.upscaler import Upscaler

PIL_PRECONVERT = {"RGBa": "RGBA", "La": "LA", "HSV": "RGB"}  # PIL modes TIFF cannot store → their plain form
SHARED_UPSCALERS = 2  # models kept loaded by `upscale()` between calls
MAX_16_BIT = 65_535


def upscale(
    image: Image.Image | str | Path,
    scale: float | None = None,
    size: Size | None = None,
    model: str | Path | None = None,
    fit: str = DEFAULT_FIT,
    *,
    adaptive: bool = False,
    threshold: float | None = None,
    route_fraction: float | None = None,
    time_budget: float | None = None,
) -> Image.Image:
    """Enlarge a PIL image or an image file by `scale` or to `size` (width, height); returns a PIL image.

    The model is loaded on first use and kept for later calls. A file keeps its ICC profile and EXIF in
    `result.info`; 16-bit grayscale comes back as mode "I;16", 16-bit colour as 8-bit (Pillow has no 16-bit RGB).
    `adaptive`, `threshold`, `route_fraction` and `time_budget` (with `model="auto"`) are as for `Upscaler`.
    """
    decoded = read_image(image) if isinstance(image, (str, Path)) else _from_pil(image)
    request = SizeRequest(scale=scale, size=size, fit=fit)
    plan = request.plan((decoded.width, decoded.height))
    upscaler = _shared_upscaler(model, adaptive, threshold, route_fraction, time_budget)
    return _to_pil(upscaler.upscale_image(decoded, plan))


@functools.lru_cache(maxsize=SHARED_UPSCALERS)
def _shared_upscaler(
    model: str | Path | None,
    adaptive: bool,
    threshold: float | None,
    route_fraction: float | None,
    time_budget: float | None,
) -> Upscaler:
    return Upscaler(
        model, adaptive=adaptive, threshold=threshold, route_fraction=route_fraction, time_budget=time_budget
    )


def _from_pil(image: Image.Image) -> DecodedImage:
    """A PIL image → DecodedImage through an uncompressed TIFF in memory, so the file reader's mode rules apply;
    an image opened from a JPEG keeps its quality (which decides the default model's choice)."""
    quality = jpeg_quality(image)
    image = image.convert(PIL_PRECONVERT[image.mode]) if image.mode in PIL_PRECONVERT else image
    buffer = io.BytesIO()
    extra = {key: image.info[key] for key in ("icc_profile", "exif") if image.info.get(key)}
    try:
        image.save(buffer, format="TIFF", **extra)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot enlarge a PIL image of mode {image.mode} ({exc}); convert it to RGB first") from None
    decoded = decode_image_bytes(buffer.getvalue(), name=f"PIL image ({image.mode})")
    return dataclasses.replace(decoded, jpeg_quality=quality)


def _to_pil(image: DecodedImage) -> Image.Image:
    """DecodedImage → PIL image: 8-bit L/LA/RGB/RGBA, or "I;16" for 16-bit grayscale; ICC and EXIF in `info`."""
    if image.bit_depth == 16 and image.mode == "L":
        samples = np.rint(image.pixels[..., 0] * MAX_16_BIT).astype(np.uint16)
        result = Image.fromarray(samples)
    else:
        samples = np.rint(image.pixels * MAX_8_BIT).astype(np.uint8)
        result = Image.fromarray(samples[..., 0] if image.mode == "L" else samples)
    result.info.update({k: v for k, v in (("icc_profile", image.icc_profile), ("exif", image.exif)) if v})
    return result
