"""The model contract: what every network behind the registry offers the engine, and what the engine knows of it.

A model is a plain `nn.Module` that satisfies `SuperResolver` (encode an LR image once, query colours at any
continuous coordinates); it may also satisfy `GridDecoder`, a fast path that decodes a whole output grid at once,
and `BandedGridDecoder`, a grid path that may be run band by band from outside (the ONNX grid graph), and
`PhaseBlockDecoder`, the phase-dense form of a centred block of an integer-scale grid (the ONNX phase graph).
`check_contract` verifies a module once, when it is loaded, and `LoadedModel` records once which optional paths
its module has, so the engine calls every model the same way and never probes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from enlarge.errors import ModelError
from enlarge.models.specs import ROUTE_BLOCK

if TYPE_CHECKING:
    import torch
    from torch import nn

    from enlarge.models.card import ModelCard

DEFAULT_TRAINED_SCALES = (1.0, 4.0)
DEFAULT_PRECISION = "fp32"


@runtime_checkable
class SuperResolver(Protocol):
    """Encode once, query anywhere: the interface the engine renders every model through."""

    @property
    def receptive_field(self) -> int:
        """LR pixels of context each side that an output pixel depends on (the tile overlap)."""
        ...

    def encode(self, lr: torch.Tensor) -> Any:
        """1×3×h×w in [0, 1] → opaque features that `query` understands."""
        ...

    def query(self, feats: Any, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Colours at B×Q×2 coordinates in [-1, 1] (y, x), `cell` the B×Q×2 output pixel size → B×Q×3."""
        ...


@runtime_checkable
class GridDecoder(Protocol):
    """Optional fast path: colours on the grid `ys` × `xs` (local [-1, 1] coordinates) → 1×3×len(ys)×len(xs)."""

    def query_grid(self, feats: Any, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class BandedGridDecoder(GridDecoder, Protocol):
    """A grid path that traces with symbolic sizes and costs only the rows it is given, so it can run in bands of
    about `grid_band` output pixels (what the ONNX export needs for its grid graph)."""

    @property
    def grid_band(self) -> int:
        """Output pixels per call when the grid is decoded band by band."""
        ...


@runtime_checkable
class PhaseBlockDecoder(BandedGridDecoder, Protocol):
    """A banded grid path with a traceable phase-dense form for integer scales: colours on a centred block
    (`phases.centred_block`) from the LR cells `rows` × `cols` it spans and each phase's offsets to them, equal to
    `query_grid` at those pixels (what the ONNX export traces as its phase graph)."""

    def query_block(self, feats: Any, rows: torch.Tensor, cols: torch.Tensor, row_offsets: torch.Tensor,
                    col_offsets: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                    cell: torch.Tensor) -> torch.Tensor: ...


CONTRACT_MEMBERS = ("receptive_field", "encode", "query")


def check_contract(module: object, source: str) -> None:
    """ModelError naming what is missing if `module` does not satisfy `SuperResolver`."""
    if not isinstance(module, SuperResolver):
        missing = [name for name in CONTRACT_MEMBERS if not hasattr(module, name)]
        raise ModelError(f"{source}: {type(module).__name__} is not a super-resolution model (lacks {', '.join(missing)})")


@dataclass
class Descriptor:
    """Everything the engine needs to know about a model, apart from the module itself."""

    name: str
    arch: str
    config: dict[str, Any]
    receptive_field: int
    trained_scales: tuple[float, float] = DEFAULT_TRAINED_SCALES
    default_precision: str = DEFAULT_PRECISION
    has_weights: bool = False
    card: ModelCard | None = None
    source: str = "registry"  # where the weights came from (bundled file, path)
    little: str | None = None  # cheaper registered model this one refines (spec `little`, else LITTLE_PATHS)
    route_block: int = ROUTE_BLOCK  # Little–Big geometry for this pair (specs.Companion)
    route_context: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    """A ready-to-run module (eval mode) and its descriptor; `grid` is the module as a `GridDecoder` where it has
    that fast path (None: the engine queries points), decided once, here."""

    module: nn.Module
    descriptor: Descriptor
    grid: GridDecoder | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.grid = self.module if isinstance(self.module, GridDecoder) else None

    @property
    def parameters(self) -> int:
        return parameter_count(self.module)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
