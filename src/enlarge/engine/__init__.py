"""The inference engine: tiling, coordinate queries and precision, generic over every model."""

from enlarge.engine.render import render

__all__ = ["render"]
