"""Reduced precision: bf16 detection (never on without native bf16, mocked here), the precision each run uses,
and `enlarge calibrate`, which measures the bf16 loss on held-out images and records the decision in the card."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from conftest import REPO
from enlarge.cli.main import main
from enlarge.engine import precision, render
from enlarge.engine.calibration import CalibrationImage, calibrate
from enlarge.errors import ConfigError, EnlargeError, ModelError
from enlarge.imageio import DecodedImage
from enlarge.metrics import psnr
from enlarge.models import build, load_model
from enlarge.models.card import ModelCard
from enlarge.training.config import training_precision
from enlarge.models.registry import LoadedModel, describe
from enlarge.sizing import SizeRequest
from enlarge.upscaler import Upscaler

TINY_LITE = {"n_feats": 8, "n_resblocks": 1, "hidden": 8, "head": [8]}
VAL_CROP = 24  # divisible by every validation scale (2, 3, 4)
VAL_IMAGES = ["Photos/a.png", "Photos/b.png"]
RENDER_MODULE = importlib.import_module("enlarge.engine.render")  # the package's `render` attribute is the function


@pytest.fixture(autouse=True)
def fresh_detection() -> Iterator[None]:
    """bf16 support is decided once per process (cached): start and leave every test with a clean cache."""
    precision.bf16_supported.cache_clear()
    yield
    precision.bf16_supported.cache_clear()


@pytest.fixture
def bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with native bf16 (autocast itself runs on any CPU, emulated where needed)."""
    monkeypatch.setattr(precision, "bf16_supported", lambda device_type="cpu": True)


@pytest.fixture
def no_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without native bf16."""
    monkeypatch.setattr(precision, "bf16_supported", lambda device_type="cpu": False)


def tiny_lite(default_precision: str = "fp32") -> LoadedModel:
    torch.manual_seed(0)
    module = build("lite", TINY_LITE).eval()
    card = ModelCard(name="tiny", arch="lite", config=TINY_LITE, default_precision=default_precision)
    return LoadedModel(module, describe("tiny", "lite", TINY_LITE, module, has_weights=True, card=card))


def test_no_native_bf16_feature_means_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_features", lambda: {"avx512_f": True, "avx512_bf16": False})
    assert not precision.bf16_supported("cpu")


def test_no_avx512_kernels_means_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_features", lambda: {"avx512_bf16": True})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not precision.bf16_supported("cpu")


def test_a_failing_probe_means_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_features", lambda: {"amx_bf16": True})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(precision, "_probe_bf16_matmul", lambda: False)
    assert not precision.bf16_supported("cpu")
    precision.bf16_supported.cache_clear()
    monkeypatch.setattr(precision, "_probe_bf16_matmul", lambda: True)
    assert precision.bf16_supported("cpu")


def test_detection_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(precision, "cpu_features", lambda: calls.append(1) or {})
    assert not precision.bf16_supported("cpu") and not precision.bf16_supported("cpu")
    assert len(calls) == 1


def test_unknown_devices_have_no_bf16() -> None:
    assert not precision.bf16_supported("mps")


@pytest.mark.usefixtures("no_bf16")
def test_without_native_bf16_the_card_default_falls_back_and_an_explicit_request_fails() -> None:
    assert precision.resolve_precision(None, "bf16") == "fp32"
    assert precision.resolve_precision("fp32", "bf16") == "fp32"
    with pytest.raises(EnlargeError, match="no native bf16"):
        precision.resolve_precision("bf16", "fp32")


@pytest.mark.usefixtures("bf16")
def test_with_native_bf16_the_card_default_and_the_user_decide() -> None:
    assert precision.resolve_precision(None, "bf16") == "bf16"
    assert precision.resolve_precision(None, "fp32") == "fp32"
    assert precision.resolve_precision("fp32", "bf16") == "fp32"
    assert precision.resolve_precision("bf16", "fp32") == "bf16"


@pytest.mark.usefixtures("no_bf16")
def test_training_without_native_bf16_falls_back_to_fp32_and_says_why() -> None:
    assert training_precision("auto") == ("fp32", None)
    assert training_precision("fp32") == ("fp32", None)
    chosen, warning = training_precision("bf16")
    assert chosen == "fp32" and warning is not None and "no native bf16" in warning


@pytest.mark.usefixtures("bf16")
def test_training_with_native_bf16_keeps_the_recipe_precision() -> None:
    assert training_precision("auto") == ("bf16", None)
    assert training_precision("bf16") == ("bf16", None)
    assert training_precision("fp32") == ("fp32", None)


def test_bad_precision_values_are_typed_errors() -> None:
    with pytest.raises(EnlargeError, match="unknown precision"):
        precision.resolve_precision("fp16", "fp32")
    with pytest.raises(ModelError, match="default_precision"):
        precision.resolve_precision(None, "int8")


@pytest.mark.usefixtures("no_bf16")
def test_render_never_runs_bf16_without_native_support(monkeypatch: pytest.MonkeyPatch) -> None:
    """A card saying bf16 on a CPU without it: the engine runs fp32 (no autocast at all)."""
    contexts = []
    original = precision.precision_context
    monkeypatch.setattr(RENDER_MODULE, "precision_context",
                        lambda mode, device: contexts.append(mode) or original(mode, device))
    lr = torch.rand(1, 3, 11, 13)
    out = render(tiny_lite("bf16"), lr, (25, 30))
    assert contexts == ["fp32"]
    assert torch.equal(out, render(tiny_lite("fp32"), lr, (25, 30)))
    upscaler = Upscaler(tiny_lite("bf16"))
    assert upscaler.precision == "fp32"
    with pytest.raises(EnlargeError, match="no native bf16"):
        Upscaler(tiny_lite("fp32"), precision="bf16")


@pytest.mark.usefixtures("bf16")
def test_render_uses_the_card_default_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    contexts = []
    original = precision.precision_context
    monkeypatch.setattr(RENDER_MODULE, "precision_context",
                        lambda mode, device: contexts.append(mode) or original(mode, device))
    lr = torch.rand(1, 3, 11, 13)
    render(tiny_lite("bf16"), lr, (25, 30))
    render(tiny_lite("bf16"), lr, (25, 30), precision="fp32")
    render(tiny_lite("fp32"), lr, (25, 30))
    assert contexts == ["bf16", "fp32", "fp32"]
    assert Upscaler(tiny_lite("bf16")).precision == "bf16"
    assert Upscaler(tiny_lite("bf16"), precision="fp32").precision == "fp32"


# bf16 keeps 8 bits of mantissa: outputs of a trained model stay within a few 8-bit levels of fp32 and lose at most
# hundredths of a dB (the shipped card measured 0.0009 dB); a broken bf16 path (a layer left in bf16 that
# overflows, a wrong cast) costs whole dB.
BF16_MAX_LOSS_DB = 0.05
BF16_MIN_AGREEMENT_DB = 40.0  # PSNR of the bf16 output against the fp32 output
BF16_MAX_ABS_DIFF = 8 / 255
PIN_CROP = 96
PIN_SCALE = 2


def _shipped_pair() -> tuple[LoadedModel, torch.Tensor, torch.Tensor]:
    """The bundled lite, and an HR crop of an example photo with its bicubic LR (the evaluation protocol)."""
    from enlarge.evaluation import make_lr, read_rgb8

    try:
        model = load_model("lite")
    except ModelError:
        pytest.skip("lite weights are not bundled in this checkout")
    hr8 = read_rgb8(REPO / "examples" / "coffee.png")[:, :PIN_CROP, :PIN_CROP]
    return model, make_lr(hr8, PIN_SCALE)[None].float() / 255, hr8[None].float() / 255


@pytest.mark.usefixtures("bf16")
def test_bf16_output_is_close_to_fp32() -> None:
    """The shipped model in bf16 (emulated where the CPU lacks it) against fp32: same image, same quality."""
    model, lr, hr = _shipped_pair()
    size = tuple(hr.shape[-2:])
    fp32 = render(model, lr, size, precision="fp32").clamp(0, 1)
    bf16 = render(model, lr, size, precision="bf16").clamp(0, 1)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert (bf16 - fp32).abs().max() <= BF16_MAX_ABS_DIFF
    assert psnr(bf16, fp32, shave=PIN_SCALE, metric="rgb") >= BF16_MIN_AGREEMENT_DB
    loss = psnr(fp32, hr, shave=PIN_SCALE) - psnr(bf16, hr, shave=PIN_SCALE)
    assert loss <= BF16_MAX_LOSS_DB


@pytest.mark.usefixtures("bf16")
def test_bf16_upscaler_output_is_close_to_fp32() -> None:
    """Through the Upscaler (colour and alpha passes), bf16 and fp32 give nearly the same visible pixels: colour
    times alpha, since un-premultiplying where alpha is near 0 magnifies any difference in invisible colour."""
    model, lr, _ = _shipped_pair()
    rgb = lr[0].permute(1, 2, 0).numpy()
    alpha = np.linspace(0, 1, rgb.shape[0] * rgb.shape[1], dtype=np.float32).reshape(*rgb.shape[:2], 1)
    image = DecodedImage(np.concatenate([rgb, alpha], axis=-1))
    plan = SizeRequest(scale=PIN_SCALE).plan((image.width, image.height))
    outputs = [Upscaler(model, precision=mode).upscale_image(image, plan).pixels for mode in ("fp32", "bf16")]
    visible = [np.concatenate([out[..., :-1] * out[..., -1:], out[..., -1:]], axis=-1) for out in outputs]
    assert np.abs(visible[0] - visible[1]).max() <= BF16_MAX_ABS_DIFF


def _images() -> list[CalibrationImage]:
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 3, VAL_CROP, VAL_CROP, generator=generator)
    return [CalibrationImage(f"noise x{s}", torch.nn.functional.avg_pool2d(hr, s), hr, s) for s in (2, 4)]


@pytest.mark.usefixtures("bf16")
def test_calibration_decides_by_the_loss_at_every_scale() -> None:
    model = tiny_lite()
    lenient = calibrate(model, _images(), max_loss_db=1e9)
    strict = calibrate(model, _images(), max_loss_db=-1e9)
    assert (lenient.decision, strict.decision) == ("bf16", "fp32")
    assert set(lenient.loss_db) == {"x2", "x4"}
    for scale, loss in lenient.loss_db.items():
        assert loss == pytest.approx(lenient.psnr["fp32"][scale] - lenient.psnr["bf16"][scale])
    record = lenient.record()
    assert record["decision"] == "bf16" and record["renders"] == 2 and "rule" in record


@pytest.mark.usefixtures("no_bf16")
def test_calibration_refuses_without_native_bf16() -> None:
    with pytest.raises(EnlargeError, match="no native bf16"):
        calibrate(tiny_lite(), _images())


def _setup_calibration(tmp: Path) -> tuple[Path, Path]:
    """Tiny weights with their card, two training images and a config naming them as the validation list."""
    module = tiny_lite().module
    weights = tmp / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(weights))
    ModelCard(name="tiny", arch="lite", config=TINY_LITE).write(tmp / "tiny.json")
    rng = np.random.default_rng(0)
    for item in VAL_IMAGES:
        path = tmp / "data" / item
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (VAL_CROP + 6, VAL_CROP + 4, 3), dtype=np.uint8)).save(path)
    config = {
        "model": {"arch": "lite", "config": TINY_LITE},
        "data": {"data_root": str(tmp / "data"), "train_dirs": ["Photos"], "val_list": VAL_IMAGES},
        "steps": 1, "patch": 8, "sample_q": 16, "val_crop": VAL_CROP, "val_scales": [2, 3, 4],
    }
    config_path = tmp / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return weights, config_path


@pytest.mark.usefixtures("bf16")
def test_calibrate_command_records_the_decision_in_the_card(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    weights, config = _setup_calibration(tmp_path)
    assert main(["calibrate", "--model", str(weights), "--config", str(config), "--max-loss", "1000"]) == 0
    card = json.loads((tmp_path / "tiny.json").read_text())
    assert card["default_precision"] == "bf16"
    record = card["extra"]["precision_calibration"]
    assert set(record["loss_db"]) == {"x2", "x3", "x4"} and record["renders"] == 2 * 3
    assert "recorded default_precision=bf16" in capsys.readouterr().out
    assert load_model(weights).descriptor.default_precision == "bf16"

    assert main(["calibrate", "--model", str(weights), "--config", str(config), "--max-loss", "-1000"]) == 0
    assert json.loads((tmp_path / "tiny.json").read_text())["default_precision"] == "fp32"


@pytest.mark.usefixtures("bf16")
def test_calibrate_dry_run_and_cardless_models_leave_no_trace(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    weights, config = _setup_calibration(tmp_path)
    before = (tmp_path / "tiny.json").read_text()
    assert main(["calibrate", "--model", str(weights), "--config", str(config), "--dry-run"]) == 0
    assert (tmp_path / "tiny.json").read_text() == before
    assert main(["calibrate", "--model", "bicubic", "--config", str(config)]) == 0
    assert "not recorded" in capsys.readouterr().out


@pytest.mark.usefixtures("no_bf16")
def test_calibrate_command_without_bf16_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    weights, config = _setup_calibration(tmp_path)
    before = (tmp_path / "tiny.json").read_text()
    assert main(["calibrate", "--model", str(weights), "--config", str(config)]) == 2
    assert "no native bf16" in capsys.readouterr().err
    assert (tmp_path / "tiny.json").read_text() == before


def test_calibration_refuses_benchmark_sets(tmp_path: Path) -> None:
    from enlarge.cli.calibrate import validation_config

    _, config = _setup_calibration(tmp_path)
    with pytest.raises(ConfigError, match="benchmark set"):
        validation_config(config, tmp_path / "data", ["Photos/Set5/baby.png"])
    section = validation_config(config, None, None).data
    assert section.val_list == VAL_IMAGES
    assert section.root == tmp_path / "data"
