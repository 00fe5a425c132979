"""ONNX export of a model as two or three graphs, and a module that runs them with onnxruntime inside our engine.

An export folder holds
- `encoder.onnx`: `image` (B×3×H×W RGB in [0, 1]) → the model's features (one tensor, or one per field of the
  features tuple `encode` returns, e.g. lite's `hidden` and `lr`);
- `decoder.onnx`: the features, `coord` and `cell` (B×Q×2, (y, x), the convention of `enlarge.coords`) → `rgb`
  (B×Q×3, unclamped): the point query;
- `decoder_grid.onnx`, for models with a band-friendly grid path (a `grid_band` attribute beside `query_grid`:
  lite, bicubic): the features, `ys` (R output row centres), `xs` (C column centres) and `cell` (2,) → `rgb`
  (1×3×R×C): `query_grid`, which the runner calls on bands of about `grid_band` pixels (rows are independent,
  so a band of `ys` gives exactly those rows). Exports without it (older ones, LIIF) run the point query;
- `decoder_phases.onnx`, for models that also have a phase-dense form (`query_block`: lite): the features, the
  LR cells `row_cells` (R + 1) and `col_cells` (W + 1) a centred block of an integer-scale grid spans
  (`phases.centred_block`), each phase's offsets to its two cells per axis (`row_offsets` P×2, `col_offsets`
  Q×2), the block's `ys`, `xs` and `cell` → `rgb` (1×3×R·P×W·Q). The runner recognises an integer-scale grid from
  its coordinates (`phases.axis_phases`, exact integer arithmetic), runs the block through this graph in bands of
  LR rows and the border strips around it through the grid graph, as PyTorch's `decode_grid` does; every other
  grid goes to the grid graph. One graph serves every integer scale, since the scale is in its inputs' shapes;
- `model.json`: the model card (when the model has one), the receptive field, the graphs' tensor names and the
  grid band.

Height, width, batch, query count and grid rows and columns are dynamic. Output coordinates and cells are built
outside the graphs: a trace would bake `make_coord(H, W)` and 1/H in as constants. The models' own size
arithmetic is written so the trace keeps it symbolic, and every export is checked against PyTorch at a second
size, aspect ratio and non-integer scale before it is written.

onnx and onnxruntime come with the `enlarge[onnx]` extra.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from enlarge.coords import axis_coords, make_coord
from enlarge.engine.precision import FP32
from enlarge.errors import EnlargeError, ModelError
from enlarge.fileutil import atomic_write_bytes, atomic_write_text
from enlarge.models.card import ModelCard
from enlarge.models.contract import BandedGridDecoder, PhaseBlockDecoder
from enlarge.models.ensemble import row_chunks
from enlarge.models.phases import CentredBlock, axis_phases, centred_block
from enlarge.models.registry import LoadedModel, describe, load_model

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
GRID_FILE = "decoder_grid.onnx"
PHASE_FILE = "decoder_phases.onnx"
META_FILE = "model.json"
META_FORMAT = "enlarge-onnx"
META_VERSION = 1  # the grid and phase graphs are optional and the band an optional field: version-1 readers ignore them
OPSET = 17
IMAGE = "image"
COORD = "coord"
CELL = "cell"
YS, XS = "ys", "xs"
ROW_CELLS, COL_CELLS = "row_cells", "col_cells"
ROW_OFFSETS, COL_OFFSETS = "row_offsets", "col_offsets"
RGB_OUTPUT = "rgb"
SINGLE_FEATURE = "features"  # the name of the one output of an encoder that returns a plain tensor
# The grid graph holds all four neighbours' pre-activations of a band at once (`ensemble.decode_cross`), so its bands
# are no larger than lite's PyTorch chunk: lite ×2 and ×4 on 256×256 (benchmarks/interleaved.py, busy 2-core Xeon,
# 1 thread) ran 1.04× PyTorch fp32's time with bands of 8192 pixels, 1.2–1.5× with 16384 or 32768.
MIN_ONNX_BAND = 8192
# The phase graph's pieces hold this many grid bands of pixels: its wide intermediates are dense products and
# maximums, and each call repeats the gathers, the bicubic skip and the geometry of its piece; lite 256² at 1 thread
# (busy 2-core EPYC) ran in 0.93× (×8), 0.96× (×4) and 0.98× (×2) the time with pieces of 4 bands as with 1;
# 8 were no better. ×8 from 256² peaks at 652 MB (562 with 1).
PHASE_BANDS = 4


def phase_band(grid_band: int) -> int:
    """Pixels per call of the phase graph for a model whose grid graph runs in bands of `grid_band` pixels (the
    Python runner and the web page both size their phase pieces by it)."""
    return grid_band * PHASE_BANDS

EXAMPLE_LR = (24, 32)  # (h, w) of the tracing example
EXAMPLE_SCALE = 2
CHECK_LR = (19, 13)  # the self-check: another size, aspect ratio (portrait) and a non-integer scale
CHECK_OUT = (47, 30)
CHECK_TOL = 1e-4
CHECK_BAND = 7 * CHECK_OUT[1] - 3  # the self-check runs the grid graph in uneven bands of a few rows
CHECK_PHASE_SCALE = 3  # the phase graph's self-check: an odd integer scale (the example's is even) at CHECK_LR
BATCH, HEIGHT, WIDTH, QUERIES, ROWS, COLS = "batch", "height", "width", "queries", "rows", "columns"
CELL_ROWS, CELL_COLS, ROW_PHASES, COL_PHASES = "cell_rows", "cell_columns", "row_phases", "column_phases"
RGB = 3
PROVIDERS = ["CPUExecutionProvider"]
# onnxruntime's exception types for a graph it cannot load (they derive from Exception directly)
ORT_LOAD_ERRORS = ("Fail", "InvalidGraph", "InvalidProtobuf", "InvalidArgument", "NoSuchFile", "RuntimeException")


@dataclass(frozen=True)
class OnnxExport:
    """The files of one export."""

    folder: Path
    encoder: Path
    decoder: Path
    meta: Path
    grid: Path | None = None  # decoder_grid.onnx, for models with a band-friendly grid path
    phases: Path | None = None  # decoder_phases.onnx, for models with a phase-dense form as well


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise EnlargeError("ONNX needs onnxruntime: pip install 'enlarge[onnx]'") from None
    return onnxruntime


def _feature_tensors(feats: object) -> tuple[list[str], tuple[torch.Tensor, ...]]:
    """Names and tensors of what `encode` returned: a tensor, or a NamedTuple of tensors."""
    if isinstance(feats, torch.Tensor):
        return [SINGLE_FEATURE], (feats,)
    if isinstance(feats, tuple) and hasattr(feats, "_fields") and all(isinstance(t, torch.Tensor) for t in feats):
        return list(feats._fields), tuple(feats)
    raise ModelError(f"cannot export features of type {type(feats).__name__}: need a tensor or a NamedTuple")


class _Encoder(nn.Module):
    """`encode` with its features flattened to a tuple of tensors."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _feature_tensors(self.module.encode(image))[1]


class _Decoder(nn.Module):
    """`query` taking the features as separate tensors, rebuilt into what `encode` returns."""

    def __init__(self, module: nn.Module, feature_type: type | None) -> None:
        super().__init__()
        self.module = module
        self.feature_type = feature_type  # None: a single tensor

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *tensors, coord, cell = inputs
        feats = tensors[0] if self.feature_type is None else self.feature_type(*tensors)
        return self.module.query(feats, coord, cell)


class _GridDecoder(_Decoder):
    """`query_grid` taking the features as separate tensors: the whole grid of `ys` × `xs` in one call."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *tensors, ys, xs, cell = inputs
        feats = tensors[0] if self.feature_type is None else self.feature_type(*tensors)
        return self.module.query_grid(feats, ys, xs, cell)


class _PhaseDecoder(_Decoder):
    """`query_block` taking the features as separate tensors: a centred block of an integer-scale grid."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *tensors, rows, cols, row_offsets, col_offsets, ys, xs, cell = inputs
        feats = tensors[0] if self.feature_type is None else self.feature_type(*tensors)
        return self.module.query_block(feats, rows, cols, row_offsets, col_offsets, ys, xs, cell)


def grid_band(module: nn.Module) -> int | None:
    """Pixels per call of the grid graph (the module's band, at least MIN_ONNX_BAND), or None when `module` gets
    no grid graph.

    Only a module with `query_grid` and a `grid_band` (pixels per call) gets one: its grid path traces with
    symbolic sizes and costs only the rows it is given. LIIF's convolves the whole feature map on every call,
    which a graph run band by band would repeat.
    """
    if not isinstance(module, BandedGridDecoder):
        return None
    return max(int(module.grid_band), MIN_ONNX_BAND)


def _trace(module: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
           dynamic: dict[str, dict[int, str]]) -> bytes:
    """One graph as ONNX bytes; a trace that would freeze a value (TracerWarning) is an error, not a warning."""
    with tempfile.TemporaryDirectory(prefix="enlarge-trace-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter announces its successor
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("error", torch.jit.TracerWarning)
        path = Path(tmp) / "graph.onnx"
        torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
                          opset_version=OPSET, dynamo=False)
        return path.read_bytes()


def _query_inputs(out_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates and cells of a whole `out_hw` output grid, batch 1, as the decoder takes them."""
    coord = make_coord(out_hw).unsqueeze(0)
    cell = _grid_cell(out_hw).expand_as(coord).contiguous()
    return coord, cell


def _grid_cell(out_hw: tuple[int, int]) -> torch.Tensor:
    """The cell (2,) of an `out_hw` output grid: one output pixel, (y, x)."""
    return torch.tensor([2.0 / out_hw[0], 2.0 / out_hw[1]])


def _block_inputs(lr_hw: tuple[int, int], scale: int) -> tuple[torch.Tensor, ...]:
    """The phase graph's inputs after the features for the centred block of an `lr_hw` image at `scale`."""
    out_hw = (lr_hw[0] * scale, lr_hw[1] * scale)
    ys, xs = axis_coords(out_hw[0]), axis_coords(out_hw[1])
    by, bx = (centred_block(axis_phases(c, n)) for c, n in ((ys, lr_hw[0]), (xs, lr_hw[1])))
    return by.cells(), bx.cells(), by.offset_table(), bx.offset_table(), ys[by.span()], xs[bx.span()], \
        _grid_cell(out_hw)


def export_onnx(model: LoadedModel, folder: Path, int8: bool = False) -> OnnxExport:
    """Write `model` as encoder.onnx + decoder.onnx (+ decoder_grid.onnx) + model.json into `folder` (created if
    missing); the grid graph when `grid_band(module)` says the model has a band-friendly grid path.

    `int8`: the graphs' weights quantized to 8 bits after the check (`quantize_int8`), for edge devices; it
    changes the output (`benchmarks/onnx_int8.py` measures by how much). ModelError if the exported fp32 graphs
    disagree with PyTorch on the self-check (beyond CHECK_TOL).
    """
    module, descriptor = model.module, model.descriptor
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnlargeError(f"cannot create the ONNX folder {folder} ({exc.strerror})") from None
    image = torch.rand(1, 3, *EXAMPLE_LR, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = module.encode(image)
        names, tensors = _feature_tensors(feats)
        example_out = (EXAMPLE_LR[0] * EXAMPLE_SCALE, EXAMPLE_LR[1] * EXAMPLE_SCALE)
        coord, cell = _query_inputs(example_out)
        spatial = {name: {0: BATCH, 2: HEIGHT, 3: WIDTH} for name, t in zip(names, tensors) if t.dim() == 4}
        encoder = _trace(_Encoder(module), (image,), [IMAGE], names, {IMAGE: {0: BATCH, 2: HEIGHT, 3: WIDTH}, **spatial})
        queries = {0: BATCH, 1: QUERIES}
        feature_type = None if names == [SINGLE_FEATURE] else type(feats)
        decoder = _trace(
            _Decoder(module, feature_type), (*tensors, coord, cell),
            [*names, COORD, CELL], [RGB_OUTPUT], {**spatial, COORD: queries, CELL: queries, RGB_OUTPUT: queries},
        )
        band = grid_band(module)
        grid = None
        if band is not None:
            grid_args = (axis_coords(example_out[0]), axis_coords(example_out[1]), _grid_cell(example_out))
            grid = _trace(
                _GridDecoder(module, feature_type), (*tensors, *grid_args), [*names, YS, XS, CELL], [RGB_OUTPUT],
                {**spatial, YS: {0: ROWS}, XS: {0: COLS}, RGB_OUTPUT: {2: ROWS, 3: COLS}},
            )
        phases = None
        if grid is not None and isinstance(module, PhaseBlockDecoder):
            phases = _trace(
                _PhaseDecoder(module, feature_type), (*tensors, *_block_inputs(EXAMPLE_LR, EXAMPLE_SCALE)),
                [*names, ROW_CELLS, COL_CELLS, ROW_OFFSETS, COL_OFFSETS, YS, XS, CELL], [RGB_OUTPUT],
                {**spatial, ROW_CELLS: {0: CELL_ROWS}, COL_CELLS: {0: CELL_COLS}, ROW_OFFSETS: {0: ROW_PHASES},
                 COL_OFFSETS: {0: COL_PHASES}, YS: {0: ROWS}, XS: {0: COLS}, RGB_OUTPUT: {2: ROWS, 3: COLS}},
            )
    meta = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "name": descriptor.name,
        "arch": descriptor.arch,
        "config": descriptor.config,
        "receptive_field": descriptor.receptive_field,
        "has_weights": descriptor.has_weights,
        "features": names,
        "grid_band": band,
        "opset": OPSET,
        "int8": int8,
        "card": dataclasses.asdict(descriptor.card) if descriptor.card is not None else None,
    }
    _check(module, encoder, decoder, names, grid, phases)
    if int8:
        encoder, decoder = quantize_int8(encoder), quantize_int8(decoder)
        grid, phases = (quantize_int8(g) if g is not None else None for g in (grid, phases))
    paths = OnnxExport(folder, folder / ENCODER_FILE, folder / DECODER_FILE, folder / META_FILE,
                       folder / GRID_FILE if grid is not None else None,
                       folder / PHASE_FILE if phases is not None else None)
    atomic_write_bytes(paths.encoder, encoder)
    atomic_write_bytes(paths.decoder, decoder)
    for name, graph in ((GRID_FILE, grid), (PHASE_FILE, phases)):
        if graph is not None:
            atomic_write_bytes(folder / name, graph)
        else:
            (folder / name).unlink(missing_ok=True)  # a stale graph of an earlier export into this folder
    atomic_write_text(paths.meta, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return paths


def quantize_int8(graph: bytes) -> bytes:
    """`graph` with its weights stored as int8 and its matrix products and convolutions run in int8
    (onnxruntime's dynamic quantisation: activations are quantised per call, so no calibration data is needed)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="enlarge-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(graph)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)
        return target.read_bytes()


def _check(module: nn.Module, encoder: bytes, decoder: bytes, names: list[str], grid: bytes | None,
           phases: bytes | None) -> None:
    """Run the graphs at CHECK_LR → CHECK_OUT and compare with PyTorch: catches any size baked into a graph.

    The grid graph runs in bands of CHECK_BAND pixels, against the module's own `query_grid`; so does the phase
    graph with its strips, at the integer scale CHECK_PHASE_SCALE.
    """
    image = torch.rand(1, 3, *CHECK_LR, generator=torch.Generator().manual_seed(1))
    coord, cell = _query_inputs(CHECK_OUT)
    grids = {"grid": CHECK_OUT, "phase": (CHECK_LR[0] * CHECK_PHASE_SCALE, CHECK_LR[1] * CHECK_PHASE_SCALE)}
    grids = {kind: (axis_coords(hw[0]), axis_coords(hw[1]), _grid_cell(hw)) for kind, hw in grids.items()
             if (grid, phases)[kind == "phase"] is not None}
    with torch.no_grad():
        feats = module.encode(image)
        expected = {"point": module.query(feats, coord, cell).numpy()}
        expected |= {kind: module.query_grid(feats, *args).numpy() for kind, args in grids.items()}
    runner = OnnxModel.from_bytes(encoder, decoder, names, receptive_field=0, grid=grid, grid_band=CHECK_BAND,
                                  phases=phases)
    onnx_feats = runner.encode(image)
    got = {"point": runner.query(onnx_feats, coord, cell).numpy()}
    if isinstance(runner, OnnxGridModel):
        got |= {kind: runner.query_grid(onnx_feats, *args).numpy() for kind, args in grids.items()}
    for graph, want in expected.items():
        error = float(np.abs(got[graph] - want).max()) if got[graph].shape == want.shape else float("inf")
        if not error <= CHECK_TOL:
            raise ModelError(f"the ONNX export ({graph} query) disagrees with PyTorch by {error:.2e} "
                             f"(> {CHECK_TOL}); not written")


class OnnxModel(nn.Module):
    """An exported model run by onnxruntime, with the `encode` / `query` interface the engine calls.

    The features stay opaque to the engine: a tuple of tensors handed back to the decoder graph as they came.
    `from_bytes` returns an `OnnxGridModel`, which adds `query_grid`, when the export has a grid graph; this
    class has none, so the engine (`LoadedModel.grid`) sends it point queries.
    """

    def __init__(self, encoder: Any, decoder: Any, features: list[str], receptive_field: int) -> None:
        super().__init__()
        self.encoder_session = encoder
        self.decoder_session = decoder
        self.features = features
        self.receptive_field = receptive_field
        # a graph drops inputs it does not use (bicubic ignores the cell), so feed only those it has
        self.decoder_inputs = {i.name for i in decoder.get_inputs()}

    @staticmethod
    def from_bytes(encoder: bytes, decoder: bytes, features: list[str], receptive_field: int,
                   threads: int | None = None, grid: bytes | None = None,
                   grid_band: int | None = None, phases: bytes | None = None) -> OnnxModel:
        """Sessions for the serialized graphs (the grid graph optional, then run in bands of `grid_band` pixels;
        the phase graph optional beside it); ModelError if onnxruntime cannot load them."""
        if grid is not None and (grid_band is None or grid_band < 1):
            raise ModelError(f"a grid graph needs a band of at least one pixel, not {grid_band}")
        if phases is not None and grid is None:
            raise ModelError("a phase graph needs the grid graph beside it (for the strips around its blocks)")
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads if threads is not None else torch.get_num_threads()
        errors = tuple(getattr(ort.capi.onnxruntime_pybind11_state, name) for name in ORT_LOAD_ERRORS)
        graphs = [g for g in (encoder, decoder, grid, phases) if g is not None]
        try:
            sessions = [ort.InferenceSession(graph, options, providers=PROVIDERS) for graph in graphs]
        except errors as exc:
            raise ModelError(f"onnxruntime cannot load the graphs: {exc}") from None
        if grid is None:
            return OnnxModel(sessions[0], sessions[1], features, receptive_field)
        phase_session = sessions[3] if phases is not None else None
        return OnnxGridModel(sessions[0], sessions[1], sessions[2], int(grid_band), features, receptive_field,
                             phase_session)

    def encode(self, lr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(t) for t in self.encoder_session.run(self.features, {IMAGE: _array(lr)}))

    def query(self, feats: tuple[torch.Tensor, ...], coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        feed = self._feed(feats, self.decoder_inputs, {COORD: _array(coord), CELL: _array(cell)})
        return torch.from_numpy(self.decoder_session.run([RGB_OUTPUT], feed)[0])

    def _feed(self, feats: tuple[torch.Tensor, ...], inputs: set[str], extra: dict[str, np.ndarray]
              ) -> dict[str, np.ndarray]:
        """The features and `extra`, only those among a graph's `inputs` (a graph drops inputs it does not use)."""
        feed = {name: t.numpy() for name, t in zip(self.features, feats)} | extra
        return {k: v for k, v in feed.items() if k in inputs}


class OnnxGridModel(OnnxModel):
    """An export with a grid graph: `query_grid` as well, run in bands of rows of about `grid_band` pixels; with
    a phase graph, the centred block of an integer-scale grid goes through that instead."""

    def __init__(self, encoder: Any, decoder: Any, grid: Any, grid_band: int, features: list[str],
                 receptive_field: int, phases: Any | None = None) -> None:
        super().__init__(encoder, decoder, features, receptive_field)
        self.grid_session = grid
        self.grid_band = grid_band
        self.grid_inputs = {i.name for i in grid.get_inputs()}
        self.phase_session = phases
        self.phase_band = phase_band(grid_band)
        self.phase_inputs = {i.name for i in phases.get_inputs()} if phases is not None else set()

    def query_grid(self, feats: tuple[torch.Tensor, ...], ys: torch.Tensor, xs: torch.Tensor,
                   cell: torch.Tensor) -> torch.Tensor:
        """RGB on the grid `ys` × `xs` → 1×3×len(ys)×len(xs), float32, as the module's own `query_grid`.

        Band by band: each output row depends only on its own centre, so a slice of `ys` gives exactly those
        rows, and a band keeps the graph's per-pixel intermediates small, as the module's chunks do. Where both
        axes are of an integer scale and the export has a phase graph, their centred blocks go through it and
        only the strips around them through the grid graph.
        """
        rows, cols, cell_array = _array(ys), _array(xs), _array(cell)
        out = np.empty((1, RGB, len(rows), len(cols)), dtype=np.float32)
        blocks = self._centred_blocks(feats, ys, xs)
        if blocks is None:
            self._decode_grid(feats, rows, cols, cell_array, out)
            return torch.from_numpy(out)
        self._decode_block(feats, *blocks, rows, cols, cell_array, out)
        inner, across = blocks[0].span(), blocks[1].span()
        strips = [(slice(0, inner.start), slice(None), self._decode_grid),
                  (slice(inner.stop, None), slice(None), self._decode_grid),
                  (inner, slice(0, across.start), self._decode_points),
                  (inner, slice(across.stop, None), self._decode_points)]
        for band_rows, band_cols, decode in strips:
            if len(rows[band_rows]) and len(cols[band_cols]):
                decode(feats, rows[band_rows], cols[band_cols], cell_array, out[:, :, band_rows, band_cols])
        return torch.from_numpy(out)

    def _centred_blocks(self, feats: tuple[torch.Tensor, ...], ys: torch.Tensor, xs: torch.Tensor
                        ) -> tuple[CentredBlock, CentredBlock] | None:
        """Both axes' centred blocks when the export has a phase graph and the grid is of integer scales on
        the LR map (the size of the first feature map), else None."""
        if self.phase_session is None:
            return None
        h, w = feats[0].shape[-2:]
        along_y = axis_phases(ys, h)
        along_x = axis_phases(xs, w) if along_y is not None else None
        if along_y is None or along_x is None:
            return None
        by, bx = centred_block(along_y), centred_block(along_x)
        return None if by is None or bx is None else (by, bx)

    def _decode_block(self, feats: tuple[torch.Tensor, ...], by: CentredBlock, bx: CentredBlock, rows: np.ndarray,
                      cols: np.ndarray, cell: np.ndarray, out: np.ndarray) -> None:
        """The centred block `by` × `bx` into `out`, through the phase graph in pieces of whole periods of about
        `phase_band` pixels: bands of periods of rows, and of columns where one period of rows is more (the
        graph's activations, about 2 KB a pixel, stay bounded)."""
        feed = self._feed(feats, self.phase_inputs, {
            ROW_OFFSETS: by.offset_table().numpy(), COL_OFFSETS: bx.offset_table().numpy(), CELL: cell})
        cells = max(1, self.phase_band // (by.period * bx.period))  # LR cells per call
        across = min(bx.periods, cells)
        for band in row_chunks(by.periods, across, cells):
            y = slice(by.start + band.start * by.period, by.start + band.stop * by.period)
            feed[ROW_CELLS], feed[YS] = by.cells(band).numpy(), rows[y]
            for piece in row_chunks(bx.periods, 1, across):
                x = slice(bx.start + piece.start * bx.period, bx.start + piece.stop * bx.period)
                feed[COL_CELLS], feed[XS] = bx.cells(piece).numpy(), cols[x]
                out[:, :, y, x] = self.phase_session.run([RGB_OUTPUT], feed)[0]

    def _decode_grid(self, feats: tuple[torch.Tensor, ...], rows: np.ndarray, cols: np.ndarray, cell: np.ndarray,
                     out: np.ndarray) -> None:
        """The grid `rows` × `cols` into `out` (1×3×R×C), through the grid graph in bands of rows. The graph
        gathers each band's rows across the whole LR width before it picks the columns, so a band costs its rows
        times the wider of the two: a narrow border strip beside a phase block goes in short bands (as one band of
        a 2,000-row strip it held 1.3 GB)."""
        feed = self._feed(feats, self.grid_inputs, {XS: cols, CELL: cell})
        width = max(len(cols), feats[0].shape[-1])
        for band in row_chunks(len(rows), width, self.grid_band):
            feed[YS] = rows[band]
            out[:, :, band] = self.grid_session.run([RGB_OUTPUT], feed)[0]

    def _decode_points(self, feats: tuple[torch.Tensor, ...], rows: np.ndarray, cols: np.ndarray, cell: np.ndarray,
                       out: np.ndarray) -> None:
        """The grid `rows` × `cols` into `out` (1×3×R×C) through the point graph, bands of about `grid_band`
        pixels: for the strips beside a phase block, a period or less wide, which the grid graph would gather and
        transpose at the whole LR width row by row (lite ×8 from 256²: 0.9 s of such strips, 0.1 s as points)."""
        for band in row_chunks(len(rows), len(cols), self.grid_band):
            grid_y, grid_x = np.meshgrid(rows[band], cols, indexing="ij")
            coord = np.stack([grid_y, grid_x], axis=-1).reshape(1, -1, 2)
            cells = np.ascontiguousarray(np.broadcast_to(cell, coord.shape))
            rgb = self.query(feats, torch.from_numpy(coord), torch.from_numpy(cells)).numpy()  # 1×Q×3
            out[0, :, band] = rgb.reshape(grid_y.shape + (RGB,)).transpose(2, 0, 1)


def _array(t: torch.Tensor) -> np.ndarray:
    """A tensor as the contiguous float32 array a graph input takes."""
    return np.ascontiguousarray(t.detach().cpu().float().numpy())


def is_export_folder(path: str | Path) -> bool:
    """Whether `path` is a folder written by `export_onnx`."""
    folder = Path(path).expanduser()
    return folder.is_dir() and all((folder / f).is_file() for f in (ENCODER_FILE, DECODER_FILE, META_FILE))


def load_onnx_folder(folder: Path, threads: int | None = None) -> LoadedModel:
    """An export folder → LoadedModel whose module runs the graphs with onnxruntime (always fp32)."""
    folder = Path(folder).expanduser()
    try:
        meta = json.loads((folder / META_FILE).read_text())
        encoder, decoder = (folder / ENCODER_FILE).read_bytes(), (folder / DECODER_FILE).read_bytes()
        grid, phases = ((folder / f).read_bytes() if (folder / f).is_file() else None for f in (GRID_FILE, PHASE_FILE))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder} is not a readable ONNX export ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise ModelError(f"{folder / META_FILE} is not an enlarge ONNX export description")
    if meta.get("version") != META_VERSION:
        raise ModelError(f"{folder} is an ONNX export of version {meta.get('version')}; this enlarge reads {META_VERSION}")
    band = meta.get("grid_band")  # absent in exports written before the grid graph
    if band is not None and (isinstance(band, bool) or not isinstance(band, int) or band < 1):
        raise ModelError(f"{folder / META_FILE} has a grid band of {band!r}; it should be a pixel count: export again")
    if (grid is None) != (band is None):
        raise ModelError(f"{folder} has {'no ' if grid is None else ''}{GRID_FILE} but its {META_FILE} "
                         f"{'names' if band is not None else 'lacks'} a grid band: export it again")
    module = OnnxModel.from_bytes(encoder, decoder, list(meta["features"]), int(meta["receptive_field"]), threads,
                                  grid=grid, grid_band=band, phases=phases)
    card = ModelCard.from_dict(meta["card"], source=str(folder / META_FILE)) if meta.get("card") else None
    descriptor = describe(meta["name"], meta["arch"], meta["config"], module, has_weights=bool(meta["has_weights"]),
                          card=card, source=str(folder))
    return LoadedModel(module, dataclasses.replace(descriptor, default_precision=FP32))


def load_onnx(source: str | Path | LoadedModel, threads: int | None = None) -> LoadedModel:
    """An ONNX-backed model from an export folder, or from any model (name, weights file, loaded) exported now."""
    if not isinstance(source, LoadedModel) and is_export_folder(source):
        return load_onnx_folder(Path(source), threads)
    loaded = source if isinstance(source, LoadedModel) else load_model(source)
    with tempfile.TemporaryDirectory(prefix="enlarge-onnx-") as tmp:
        export_onnx(loaded, Path(tmp))
        return load_onnx_folder(Path(tmp), threads)
