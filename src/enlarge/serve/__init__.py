"""`enlarge serve`: an HTTP API and a web page over worker processes that keep the models loaded.

Needs the `serve` extra (FastAPI, uvicorn, python-multipart): `pip install 'enlarge[serve]'`. The public names
are imported on first use, so `enlarge.serve.config` (and the `enlarge` command's help) work without the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"create_app": "enlarge.serve.app", "ServeConfig": "enlarge.serve.config"}

__all__ = ["ServeConfig", "create_app"]

if TYPE_CHECKING:
    from enlarge.serve.app import create_app
    from enlarge.serve.config import ServeConfig


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
