"""ONNX: the exported encoder and decoder equal PyTorch (≤ 1e-4) at a size, aspect ratio and non-integer scale
unlike the export example, through our engine (tiled too), through the Upscaler and CLI, and through the plain
numpy + onnxruntime snippet of docs/onnx.md."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from safetensors.torch import save_file

from enlarge.cli.main import main
from enlarge.engine import render
from enlarge.errors import EnlargeError, ModelError
from enlarge.export.onnx import EXAMPLE_LR, EXAMPLE_SCALE, export_onnx, load_onnx
from enlarge.models import build
from enlarge.models.card import ModelCard
from enlarge.models.registry import LoadedModel, describe
from enlarge.upscaler import Upscaler

pytest.importorskip("onnxruntime")

TOL = 1e-4
CONFIGS = {
    "lite": {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]},
    "liif": {"encoder": {"name": "edsr", "n_resblocks": 1, "n_feats": 8}, "hidden": [16, 16]},
}
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


def test_export_writes_two_graphs_and_a_description(exported: tuple[LoadedModel, Path]) -> None:
    model, folder = exported
    assert {p.name for p in folder.iterdir()} == {"encoder.onnx", "decoder.onnx", "model.json"}
    onnx_model = load_onnx(folder)
    assert onnx_model.descriptor.receptive_field == model.descriptor.receptive_field
    assert onnx_model.descriptor.name == model.descriptor.name
    assert onnx_model.descriptor.default_precision == "fp32"


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


def test_upscaler_onnx_backend_equals_torch(exported: tuple[LoadedModel, Path]) -> None:
    from enlarge.imageio import DecodedImage
    from enlarge.sizing import SizeRequest

    model, folder = exported
    pixels = np.random.default_rng(4).random((*LR_HW, 3), dtype=np.float32)
    decoded = DecodedImage(pixels, 8)
    plan = SizeRequest(size=(OUT_HW[1], OUT_HW[0]), fit="stretch").plan((LR_HW[1], LR_HW[0]))
    torch_out = Upscaler(model, precision="fp32").upscale_image(decoded, plan).pixels
    onnx_out = Upscaler(str(folder), backend="onnx").upscale_image(decoded, plan).pixels
    on_the_fly = Upscaler(model, backend="onnx").upscale_image(decoded, plan).pixels
    assert np.abs(onnx_out - torch_out).max() <= TOL
    assert np.abs(on_the_fly - torch_out).max() <= TOL


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
    for name in ("encoder.onnx", "model.json"):
        (broken / name).write_bytes((folder / name).read_bytes())
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
