"""enlarge: enlarge images by any factor with implicit-function super-resolution, fast on CPUs.

    >>> import enlarge
    >>> big = enlarge.upscale("photo.jpg", scale=2.5)            # a PIL image
    >>> up = enlarge.Upscaler()                                  # load the model once, enlarge many
    >>> up.enlarge_file("a.png", "a_x3.png", enlarge.SizeRequest(scale=3))

The public names are imported on first use, so `import enlarge` stays light (no torch until needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from enlarge.lazy import lazy_exports

__version__ = "0.1.0"

# public name → the module that defines it
_EXPORTS = {
    "Upscaler": "enlarge.upscaler",
    "Result": "enlarge.upscaler",
    "upscale": "enlarge.pil_interface",
    "DEFAULT_MODEL": "enlarge.models.specs",
    "SizeRequest": "enlarge.sizing",
    "SizePlan": "enlarge.sizing",
    "DecodedImage": "enlarge.imageio.decoded",
    "read_image": "enlarge.imageio.reading",
    "write_image": "enlarge.imageio.writing",
    "EnlargeError": "enlarge.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from enlarge.errors import EnlargeError
    from enlarge.imageio.decoded import DecodedImage
    from enlarge.imageio.reading import read_image
    from enlarge.imageio.writing import write_image
    from enlarge.models.specs import DEFAULT_MODEL
    from enlarge.sizing import SizePlan, SizeRequest
    from enlarge.pil_interface import upscale
    from enlarge.upscaler import Result, Upscaler


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
