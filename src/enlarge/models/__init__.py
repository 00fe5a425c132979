"""The model family: named specs, architectures, the model contract, loading and model cards.

The public names are imported on first use, so `enlarge.models.specs` (no torch) stays light to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from enlarge.lazy import lazy_exports

_EXPORTS = {
    "SPECS": "enlarge.models.specs",
    "Descriptor": "enlarge.models.contract",
    "LoadedModel": "enlarge.models.contract",
    "parameter_count": "enlarge.models.contract",
    "build": "enlarge.models.architectures",
    "create": "enlarge.models.registry",
    "load_model": "enlarge.models.registry",
}

__all__ = ["SPECS", "Descriptor", "LoadedModel", "build", "create", "load_model", "parameter_count"]

if TYPE_CHECKING:
    from enlarge.models.architectures import build
    from enlarge.models.contract import Descriptor, LoadedModel, parameter_count
    from enlarge.models.registry import create, load_model
    from enlarge.models.specs import SPECS


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
