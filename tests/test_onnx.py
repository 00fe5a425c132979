"""ONNX: the exported encoder and decoders (point, and grid where the model has a band-friendly grid path) equal
PyTorch (≤ 1e-4) at a size, aspect ratio and non-integer scale unlike the export example, through our engine
(tiled too), through the Upscaler and CLI, and through the plain numpy + onnxruntime snippet of docs/onnx.md;
an export from before the grid graph still loads and runs the point query."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from safetensors.torch import save_file

from enlarge.cli.main import main
from enlarge.coords import axis_coords
from enlarge.engine import render
from enlarge.errors import EnlargeError, ModelError
from enlarge.export.onnx import (
    EXAMPLE_LR,
    EXAMPLE_SCALE,
    GRID_FILE,
    PHASE_FILE,
    OnnxGridModel,
    OnnxModel,
    export_onnx,
    grid_band,
    load_onnx,
)
from enlarge.models import build
from enlarge.models.card import ModelCard
from enlarge.models.registry import LoadedModel, describe
from enlarge.upscaler import Upscaler

pytest.importorskip("onnxruntime")

TOL = 1e-4
EXACT = 1e-5  # fp32 exactness, where both sides decode the same grid from the same features
INT8_TOL = 0.05  # int8 weights and activations: near, not equal
CONFIGS = {
    "lite": {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]},
    "liif": {"encoder": {"name": "edsr", "n_resblocks": 1, "n_feats": 8}, "hidden": [16, 16]},
    "bicubic": {},
}
WITH_GRID = {"lite", "bicubic"}  # band-friendly grid paths; LIIF's convolves the whole feature map per call
WITH_PHASES = {"lite"}  # a phase-dense form for integer scales as well
LR_HW = (29, 17)  # portrait, odd: the export example is 24×32 landscape
OUT_HW = (71, 40)  # ×2.45 tall, ×2.35 wide: non-integer and unlike the example's ×2
DOC = REPO / "docs" / "onnx.md"


def tiny(arch: str) -> LoadedModel:
    torch.manual_seed(0)
    module = build(arch, CONFIGS[arch]).eval()
    card = ModelCard(name=f"tiny-{arch}", arch=arch, config=CONFIGS[arch])
    return LoadedModel(module, describe(f"tiny-{arch}", arch, CONFIGS[arch], module, has_weights=True, card=card))


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, Path]:
    model = tiny(request.param)
    folder = tmp_path_factory.mktemp(f"onnx-{request.param}")
    export_onnx(model, folder)
    return model, folder


def test_the_test_sizes_differ_from_the_export_example() -> None:
    """Portrait against the example's landscape, and a non-integer scale on both axes against its ×2."""
    assert (LR_HW[0] > LR_HW[1]) != (EXAMPLE_LR[0] > EXAMPLE_LR[1])
    assert all(out % lr and out != lr * EXAMPLE_SCALE for out, lr in zip(OUT_HW, LR_HW))


def test_export_writes_the_graphs_and_a_description(exported: tuple[LoadedModel, Path]) -> None:
    model, folder = exported
    grid = {GRID_FILE} if model.descriptor.arch in WITH_GRID else set()
    grid |= {PHASE_FILE} if model.descriptor.arch in WITH_PHASES else set()
    assert {p.name for p in folder.iterdir()} == {"encoder.onnx", "decoder.onnx", "model.json"} | grid
    onnx_model = load_onnx(folder)
    assert onnx_model.descriptor.receptive_field == model.descriptor.receptive_field
    assert onnx_model.descriptor.name == model.descriptor.name
    assert onnx_model.descriptor.default_precision == "fp32"
    # the engine's grid path, decided when the model is loaded: present exactly when the graph is
    assert (onnx_model.grid is not None) == bool(grid)


def test_grid_graph_equals_pytorch_query_grid_across_bands(exported: tuple[LoadedModel, Path]) -> None:
    """The grid graph at LR_HW → OUT_HW, run in uneven bands of a few rows, equals the module's `query_grid`."""
    model, folder = exported
    if model.descriptor.arch not in WITH_GRID:
        pytest.skip("no grid graph for this model")
    onnx_module = load_onnx(folder).module
    assert isinstance(onnx_module, OnnxGridModel)
    assert onnx_module.grid_band == grid_band(model.module) >= model.module.grid_band
    lr = torch.rand(1, 3, *LR_HW, generator=torch.Generator().manual_seed(6))
    ys, xs = axis_coords(OUT_HW[0]), axis_coords(OUT_HW[1])
    cell = torch.tensor([2.0 / OUT_HW[0], 2.0 / OUT_HW[1]])
    with torch.no_grad():
        expected = model.module.query_grid(model.module.encode(lr), ys, xs, cell)
    feats = onnx_module.encode(lr)
    whole = onnx_module.query_grid(feats, ys, xs, cell)  # the shipped band holds the whole test grid
    onnx_module.grid_band = 3 * OUT_HW[1] + 5  # bands of 3 rows, the last one short
    banded = onnx_module.query_grid(feats, ys, xs, cell)
    assert whole.shape == banded.shape == expected.shape == (1, 3, *OUT_HW)
    assert (whole - expected).abs().max() <= TOL
    assert (banded - expected).abs().max() <= TOL


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_grid_graph_is_exact_at_integer_scales(exported: tuple[LoadedModel, Path], scale: int) -> None:
    """At integer scales, where PyTorch decodes phase-densely, the grid graph equals it to fp32 exactness."""
    model, folder = exported
    if model.descriptor.arch not in WITH_GRID:
        pytest.skip("no grid graph for this model")
    lr = torch.rand(1, 3, *LR_HW, generator=torch.Generator().manual_seed(scale))
    out_hw = (LR_HW[0] * scale, LR_HW[1] * scale)
    expected = render(model, lr, out_hw, precision="fp32")
    got = render(load_onnx(folder), lr, out_hw, tile=11)
    assert (got - expected).abs().max() <= EXACT


def count_phase_runs(module: OnnxGridModel) -> list[int]:
    """Record the pixels of every phase graph call of `module` from now on."""
    calls: list[int] = []
    session = module.phase_session

    class Spy:
        def run(self, outputs: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            result = session.run(outputs, feed)
            calls.append(result[0][0, 0].size)
            return result

    module.phase_session = Spy()
    return calls


@pytest.mark.parametrize("scale", range(2, 13))
def test_phase_graph_equals_the_point_query_at_integer_scales(exported: tuple[LoadedModel, Path], scale: int) -> None:
    """At integer scales 2…12 on an odd image the grid runs through the phase graph (all but its border strips)
    and equals PyTorch's point query to fp32 exactness; in pieces of a few periods, too."""
    model, folder = exported
    if model.descriptor.arch not in WITH_PHASES:
        pytest.skip("no phase graph for this model")
    onnx_module = load_onnx(folder).module
    lr = torch.rand(1, 3, *LR_HW, generator=torch.Generator().manual_seed(scale))
    out_hw = (LR_HW[0] * scale, LR_HW[1] * scale)
    ys, xs = axis_coords(out_hw[0]), axis_coords(out_hw[1])
    cell = torch.tensor([2.0 / out_hw[0], 2.0 / out_hw[1]])
    coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).view(1, -1, 2)
    with torch.no_grad():
        expected = model.module.query(model.module.encode(lr), coord, cell.expand_as(coord)).view(*out_hw, 3)
    feats = onnx_module.encode(lr)
    calls = count_phase_runs(onnx_module)
    whole = onnx_module.query_grid(feats, ys, xs, cell)
    block_pixels = sum(calls)
    assert block_pixels == (LR_HW[0] - 1) * (LR_HW[1] - 1) * scale**2  # between the first and last LR centres
    onnx_module.phase_band = 3 * scale**2 * 5  # pieces of 3 × 5 cells, uneven against 28 × 16
    pieces = onnx_module.query_grid(feats, ys, xs, cell)
    assert len(calls) > 2
    for got in (whole, pieces):
        assert (got[0].permute(1, 2, 0) - expected).abs().max() <= EXACT


@pytest.mark.parametrize("tile", [None, 9])
def test_onnx_through_the_engine_equals_pytorch(exported: tuple[LoadedModel, Path], tile: int | None) -> None:
    model, folder = exported
    lr = torch.rand(1, 3, *LR_HW, generator=torch.Generator().manual_seed(2))
    expected = render(model, lr, OUT_HW, tile=tile, precision="fp32")
    got = render(load_onnx(folder), lr, OUT_HW, tile=tile)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= TOL


def test_doc_snippet_runs_the_export_without_enlarge(exported: tuple[LoadedModel, Path]) -> None:
    """The first code block of docs/onnx.md, executed as written, reproduces the PyTorch model."""
    model, folder = exported
    snippet = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)[0]
    assert "import enlarge" not in snippet and "from enlarge" not in snippet
    namespace: dict[str, object] = {}
    exec(compile(snippet, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation, run as written
    image = np.random.default_rng(3).random((*LR_HW, 3), dtype=np.float32)
    got = namespace["enlarge_onnx"](str(folder), image, *OUT_HW, chunk=500)
    lr = torch.from_numpy(image).permute(2, 0, 1)[None]
    expected = render(model, lr, OUT_HW, precision="fp32").clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOL


def count_decoder_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the ONNX runner's point and grid queries from now on."""
    calls = {"point": 0, "grid": 0}
    point, grid = OnnxModel.query, OnnxGridModel.query_grid

    def counted(kind: str, method):  # noqa: ANN001, ANN202 - a test spy
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            calls[kind] += 1
            return method(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(OnnxModel, "query", counted("point", point))
    monkeypatch.setattr(OnnxGridModel, "query_grid", counted("grid", grid))
    return calls


def test_upscaler_onnx_backend_equals_torch(
    exported: tuple[LoadedModel, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the Upscaler, the ONNX backend equals PyTorch fp32, by the grid graph when the export has one."""
    from enlarge.imageio import DecodedImage
    from enlarge.sizing import SizeRequest

    model, folder = exported
    pixels = np.random.default_rng(4).random((*LR_HW, 3), dtype=np.float32)
    decoded = DecodedImage(pixels, 8)
    plan = SizeRequest(size=(OUT_HW[1], OUT_HW[0]), fit="stretch").plan((LR_HW[1], LR_HW[0]))
    torch_out = Upscaler(model, precision="fp32").upscale_image(decoded, plan).pixels
    from_folder, exported_now = Upscaler(str(folder), backend="onnx"), Upscaler(model, backend="onnx")
    calls = count_decoder_calls(monkeypatch)  # after the exports' own self-checks
    onnx_out = from_folder.upscale_image(decoded, plan).pixels
    on_the_fly = exported_now.upscale_image(decoded, plan).pixels
    assert np.abs(onnx_out - torch_out).max() <= TOL
    assert np.abs(on_the_fly - torch_out).max() <= TOL
    if model.descriptor.arch in WITH_GRID:
        assert calls["grid"] >= 2 and calls["point"] == 0
    else:
        assert calls["grid"] == 0 and calls["point"] >= 2


def as_old_export(folder: Path, old: Path) -> Path:
    """A copy of `folder` as an export from before the grid graph: no decoder_grid.onnx (nor the phase graph, which
    came later), no grid band."""
    shutil.copytree(folder, old)
    (old / GRID_FILE).unlink(missing_ok=True)
    (old / PHASE_FILE).unlink(missing_ok=True)
    meta = json.loads((old / "model.json").read_text())
    meta.pop("grid_band", None)
    (old / "model.json").write_text(json.dumps(meta))
    return old


def test_an_export_without_the_grid_graph_runs_the_point_query(
    exported: tuple[LoadedModel, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, folder = exported
    old = load_onnx(as_old_export(folder, tmp_path / "old"))
    assert not isinstance(old.module, OnnxGridModel) and getattr(old.module, "query_grid", None) is None
    lr = torch.rand(1, 3, *LR_HW, generator=torch.Generator().manual_seed(7))
    calls = count_decoder_calls(monkeypatch)
    got = render(old, lr, OUT_HW)
    assert calls["point"] >= 1 and calls["grid"] == 0
    assert (got - render(model, lr, OUT_HW, precision="fp32")).abs().max() <= TOL


def test_a_grid_graph_and_its_band_come_together(exported: tuple[LoadedModel, Path], tmp_path: Path) -> None:
    """A folder with the grid graph but no band in model.json (or a band but no graph) is a ModelError."""
    model, folder = exported
    if model.descriptor.arch not in WITH_GRID:
        pytest.skip("no grid graph for this model")
    half = as_old_export(folder, tmp_path / "half")
    shutil.copy(folder / GRID_FILE, half / GRID_FILE)
    with pytest.raises(ModelError, match="lacks a grid band"):
        load_onnx(half)
    (half / GRID_FILE).unlink()
    (half / "model.json").write_text((folder / "model.json").read_text())
    with pytest.raises(ModelError, match=f"no {GRID_FILE}"):
        load_onnx(half)


def test_onnx_backend_refuses_what_it_cannot_run(exported: tuple[LoadedModel, Path]) -> None:
    _, folder = exported
    with pytest.raises(EnlargeError, match="fp32"):
        Upscaler(str(folder), backend="onnx", precision="bf16")
    with pytest.raises(EnlargeError, match="unknown backend"):
        Upscaler(str(folder), backend="tensorrt")


def test_a_broken_export_is_a_model_error(exported: tuple[LoadedModel, Path], tmp_path: Path) -> None:
    _, folder = exported
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in folder.iterdir():
        if path.name != "decoder.onnx":
            (broken / path.name).write_bytes(path.read_bytes())
    (broken / "decoder.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        load_onnx(broken)
    (broken / "model.json").write_text("{}")
    with pytest.raises(ModelError, match="not an enlarge ONNX export"):
        load_onnx(broken)


def test_cli_exports_and_upscales_with_onnx(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    model = tiny("lite")
    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.module.state_dict().items()}, str(weights))
    model.descriptor.card.write(tmp_path / "tiny.json")
    folder = tmp_path / "onnx"
    assert main(["export", "--model", str(weights), "--onnx", str(folder)]) == 0
    assert "decoder.onnx" in capsys.readouterr().out
    source = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (*LR_HW, 3), dtype=np.uint8)).save(source)
    size = ["--size", f"{OUT_HW[1]}x{OUT_HW[0]}", "--fit", "stretch"]
    onnx_out, torch_out = tmp_path / "onnx.png", tmp_path / "torch.png"
    assert main(["upscale", str(source), *size, "--model", str(folder), "--backend", "onnx", "-o", str(onnx_out)]) == 0
    assert main(["upscale", str(source), *size, "--model", str(weights), "--precision", "fp32", "-o", str(torch_out)]) == 0
    a, b = (np.asarray(Image.open(path), dtype=np.int16) for path in (onnx_out, torch_out))
    assert np.abs(a - b).max() <= 1  # 8-bit rounding of values within 1e-4


def test_cli_export_keeps_its_run_mode_and_rejects_mixed_modes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", "--onnx", str(tmp_path / "x")]) == 2
    assert "needs both --model" in capsys.readouterr().err
    assert main(["export", "runs/x", "--name", "x", "--model", "bicubic", "--onnx", str(tmp_path / "x")]) == 2
    assert "leave them out" in capsys.readouterr().err
    assert main(["export", "runs/x"]) == 2
    assert "RUN_DIR and --name" in capsys.readouterr().err


def test_an_rdn_encoder_exports_its_plain_concatenations(tmp_path: Path) -> None:
    """RDN's in-place inference path is not traced: the graph keeps the concatenations and matches PyTorch's
    (in-place) output — export_onnx's own self-check compares them at another size and a non-integer scale."""
    config = {"encoder": {"name": "rdn", "g0": 8, "n_blocks": 2, "n_layers": 2, "growth": 4}, "hidden": [16]}
    torch.manual_seed(0)
    module = build("liif", config).eval()
    model = LoadedModel(module, describe("tiny-rdn", "liif", config, module, has_weights=True))
    export_onnx(model, tmp_path)
    image = torch.rand(1, 3, *LR_HW)
    with torch.inference_mode():
        expected = render(model, image, OUT_HW)
    assert torch.allclose(render(load_onnx(tmp_path), image, OUT_HW), expected, atol=TOL)


def test_an_int8_export_runs_close_to_fp32(tmp_path: Path) -> None:
    """`int8=True` stores int8 weights in every graph (marked in model.json) and stays near the fp32 output."""
    import onnx

    model = tiny("lite")
    export_onnx(model, tmp_path / "int8", int8=True)
    assert json.loads((tmp_path / "int8" / "model.json").read_text())["int8"] is True
    for graph in ("encoder.onnx", "decoder.onnx", GRID_FILE, PHASE_FILE):
        weights = onnx.load(tmp_path / "int8" / graph).graph.initializer
        assert any(w.data_type == onnx.TensorProto.INT8 for w in weights), graph
    lr = torch.rand(1, 3, *LR_HW, generator=torch.Generator().manual_seed(8))
    expected = render(model, lr, OUT_HW, precision="fp32")
    got = render(load_onnx(tmp_path / "int8"), lr, OUT_HW)
    assert 0 < (got - expected).abs().max() <= INT8_TOL
