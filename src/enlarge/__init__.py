"""enlarge: enlarge images by any factor with implicit-function super-resolution, fast on CPUs.

    >>> import enlarge
    >>> big = enlarge.upscale("photo.jpg", scale=2.5)            # a PIL image
    >>> up = enlarge.Upscaler()                                  # load the model once, enlarge many
    >>> up.enlarge_file("a.png", "a_x3.png", enlarge.SizeRequest(scale=3))

The public names are imported on first use, so `import enlarge` stays light (no torch until needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → the module that defines it
_EXPORTS = {
    "Upscaler": "enlarge.upscaler",
    "Result": "enlarge.upscaler",
    "upscale": "enlarge.upscaler",
    "DEFAULT_MODEL": "enlarge.upscaler",
    "SizeRequest": "enlarge.sizing",
    "SizePlan": "enlarge.sizing",
    "DecodedImage": "enlarge.imageio",
    "read_image": "enlarge.imageio",
    "write_image": "enlarge.imageio",
    "EnlargeError": "enlarge.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from enlarge.errors import EnlargeError
    from enlarge.imageio import DecodedImage, read_image, write_image
    from enlarge.sizing import SizePlan, SizeRequest
    from enlarge.upscaler import DEFAULT_MODEL, Result, Upscaler, upscale


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'enlarge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
