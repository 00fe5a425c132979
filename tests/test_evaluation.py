"""The evaluation protocol on tiny synthetic datasets, the reports, the `eval` command, and the published numbers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import BENCHMARK, require
from enlarge import degradations, evaluation
from enlarge.cli.main import main
from enlarge.errors import ConfigError, InputError, OutputError, SizeError
from enlarge.evaluation import Degradation, Reports, Settings
from enlarge.metrics import psnr, ssim_y
from enlarge.resize import imresize, imresize_np

# Bicubic on Set5 in the published tables (SRCNN onwards), and how far our protocol may land from them.
SET5_BICUBIC = {2: 33.66, 3: 30.39, 4: 28.42}
PUBLISHED_TOLERANCE_DB = 0.05


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """An 8-bit H×W×3 test image: gradients plus mild noise, so resizing has something to do."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w]
    base = np.stack([ys / h, xs / w, (ys + xs) / (h + w)], axis=-1) * 200 + 20
    return np.clip(base + rng.normal(0, 12, size=(h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset folder `Tiny`: an RGB image at the top, a grayscale one in a subfolder, and a stray text file."""
    root = tmp_path_factory.mktemp("data") / "Tiny"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(smooth_image(37, 41, seed=0)).save(root / "a.png")
    Image.fromarray(smooth_image(34, 30, seed=1)[..., 0]).save(root / "sub" / "b.png")
    (root / "notes.txt").write_text("not an image")
    return root


def read_u8(path: Path) -> torch.Tensor:
    """An image file as 3×H×W uint8, the way evaluation reads it."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)


@dataclass
class FlatModel:
    """Test stand-in for a LoadedModel whose output is one constant value; it records what it was asked."""

    descriptor: SimpleNamespace
    value: float
    calls: list[tuple[torch.Tensor, tuple[int, int]]] = field(default_factory=list)


@pytest.fixture
def flat_models(monkeypatch: pytest.MonkeyPatch) -> dict[str, FlatModel]:
    """Make `flat` (0.5) and `hot` (1.7, out of range) loadable beside the real models."""
    models = {name: FlatModel(SimpleNamespace(name=name), value) for name, value in (("flat", 0.5), ("hot", 1.7))}
    real_load, real_render = evaluation.load_model, evaluation.render

    def load(name: str):
        return models[name] if name in models else real_load(name)

    def render(model, lr: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        if isinstance(model, FlatModel):
            model.calls.append((lr.clone(), out_size))
            return torch.full((1, 3, *out_size), model.value)
        return real_render(model, lr, out_size)

    monkeypatch.setattr(evaluation, "load_model", load)
    monkeypatch.setattr(evaluation, "render", render)
    return models


def test_find_dataset_layouts(tiny: Path, tmp_path: Path) -> None:
    dataset = evaluation.find_dataset(tiny)
    assert dataset.name == "Tiny" and dataset.lr_root is None
    assert [p.relative_to(tiny).as_posix() for p in dataset.images] == ["a.png", "sub/b.png"]
    assert len(evaluation.find_dataset(tiny, limit=1).images) == 1

    bench = tmp_path / "Bench"
    (bench / "HR").mkdir(parents=True)
    Image.fromarray(smooth_image(20, 20, seed=2)).save(bench / "HR" / "x.webp", lossless=True)
    assert evaluation.find_dataset(bench).hr_root == bench / "HR"
    assert evaluation.find_dataset(bench / "HR").name == "Bench"  # a folder called HR is named by its parent

    (tmp_path / "Empty").mkdir()
    with pytest.raises(InputError):
        evaluation.find_dataset(tmp_path / "Empty")
    with pytest.raises(InputError):
        evaluation.find_dataset(tmp_path / "Missing")


def test_settings_validation() -> None:
    assert evaluation.parse_scales("2, 3,4") == (2, 3, 4)
    for bad in ("2.5", "", "x"):
        with pytest.raises(SizeError):
            evaluation.parse_scales(bad)
    with pytest.raises(SizeError):
        Settings(scales=(0,))
    with pytest.raises(SizeError):
        Settings(scales=(2, 2))
    with pytest.raises(ConfigError):
        Settings(scales=(2,), metric="lab")
    with pytest.raises(ConfigError):
        Settings(scales=(2,), limit=0)
    for bad in ("jpeg", "jpeg0", "jpeg101", "png75", "noise0", "bicubic", "nearest+jpeg50+jpeg75", "jpeg75+"):
        with pytest.raises(ConfigError):
            Settings(scales=(2,), degrade=bad)
    assert Settings(scales=(2,), degrade="jpeg75").degradation == Degradation(jpeg_quality=75)
    assert Settings(scales=(2,), degrade="jpeg50+noise2.5+nearest").degradation == Degradation("nearest", 2.5, 50)
    assert Settings(scales=(3,)).shave(3) == 3
    assert Settings(scales=(3,), metric="rgb").shave(3) == 9


def test_make_lr_is_matlab_uint8_imresize(tiny: Path) -> None:
    hr = read_u8(tiny / "a.png")[:, :36, :40]
    expected = imresize_np(hr.permute(1, 2, 0).numpy(), scale=1 / 4)
    assert np.array_equal(evaluation.make_lr(hr, 4).permute(1, 2, 0).numpy(), expected)


def test_evaluate_rows_scores_and_protocol(tiny: Path, flat_models: dict[str, FlatModel]) -> None:
    settings = Settings(scales=(2, 4))
    rows = evaluation.evaluate(["flat", "hot", "flat"], [tiny], settings, progress=False)
    assert [(r.model, r.scale) for r in rows] == [
        ("bicubic", 2), ("bicubic", 4), ("flat", 2), ("flat", 4), ("hot", 2), ("hot", 4)
    ]
    assert all(r.dataset == "Tiny" and r.n_images == 2 for r in rows)
    assert [s.name for s in rows[0].per_image] == ["a", "sub/b"]

    # The models got the top-left crop's 8-bit LR as float32 in [0, 1], and were asked for the cropped HR size.
    hr_a = read_u8(tiny / "a.png")[:, :36, :40]  # 37×41 cropped to a multiple of 4
    lr, out_size = flat_models["flat"].calls[2]  # scale 4, first image
    assert out_size == (36, 40) and lr.shape == (1, 3, 9, 10) and lr.dtype == torch.float32
    assert torch.equal((lr[0] * 255).round().to(torch.uint8), evaluation.make_lr(hr_a, 4))

    # SR is clamped and rounded to 8 bits before scoring: 0.5 → level 128, 1.7 → 1.0.
    hr = hr_a.double() / 255
    flat = torch.full_like(hr, 128 / 255)
    by_key = {(r.model, r.scale): r for r in rows}
    assert by_key[("flat", 4)].per_image[0].psnr == pytest.approx(psnr(flat, hr, shave=4))
    assert by_key[("flat", 4)].per_image[0].ssim == pytest.approx(ssim_y(flat, hr, shave=4))
    assert by_key[("hot", 4)].per_image[0].psnr == pytest.approx(psnr(torch.ones_like(hr), hr, shave=4))
    row = by_key[("flat", 4)]
    assert row.psnr == pytest.approx(np.mean([s.psnr for s in row.per_image]))

    # The bicubic row is MATLAB bicubic enlargement of the same LR (the engine's grid sampler vs imresize).
    lr_a = evaluation.make_lr(hr_a, 4).double() / 255
    bicubic_sr = (imresize(lr_a, output_size=(36, 40)).clamp(0, 1) * 255).round() / 255
    assert by_key[("bicubic", 4)].per_image[0].psnr == pytest.approx(psnr(bicubic_sr, hr, shave=4), abs=0.01)


def test_rgb_metric_uses_scale_plus_six(tiny: Path, flat_models: dict[str, FlatModel]) -> None:
    rows = evaluation.evaluate(["flat"], [tiny], Settings(scales=(2,), metric="rgb", limit=1), progress=False)
    hr = read_u8(tiny / "a.png")[:, :36, :40].double() / 255
    flat = torch.full_like(hr, 128 / 255)
    assert rows[1].per_image[0].psnr == pytest.approx(psnr(flat, hr, shave=8, metric="rgb"))
    assert rows[1].per_image[0].ssim == pytest.approx(ssim_y(flat, hr, shave=8))


def test_jpeg_degradation_applies_to_lr(tiny: Path, flat_models: dict[str, FlatModel]) -> None:
    evaluation.evaluate(["flat"], [tiny], Settings(scales=(2,), degrade="jpeg75", limit=1), progress=False)
    lr = (flat_models["flat"].calls[0][0][0] * 255).round().to(torch.uint8)
    clean = evaluation.make_lr(read_u8(tiny / "a.png")[:, :36, :40], 2)
    assert torch.equal(lr, evaluation.to_uint8(degradations.jpeg_roundtrip(clean.float() / 255, 75)))
    assert not torch.equal(lr, clean)


def test_degradations_make_the_lr_in_photo_order(tiny: Path, flat_models: dict[str, FlatModel]) -> None:
    """nearest: point sampling of the HR instead of bicubic; noise: the same for the same image and scale, other
    for another; combined: kernel, then noise, then JPEG, as each step alone does it."""
    hr = read_u8(tiny / "a.png")[:, :36, :40]
    nearest = Degradation(kernel="nearest").make_lr(hr, 4, "a.png")
    assert torch.equal(nearest, hr[:, 2::4, 2::4])  # nearest-exact: the centre pixel of each 4×4 cell
    noisy = Degradation(noise_sigma=5).make_lr(hr, 2, "a.png")
    assert torch.equal(noisy, Degradation(noise_sigma=5).make_lr(hr, 2, "a.png"))
    assert not torch.equal(noisy, Degradation(noise_sigma=5).make_lr(hr, 2, "b.png"))
    assert 3 < (noisy.float() - evaluation.make_lr(hr, 2).float()).std() < 7
    combined = Degradation("nearest", 5, 75).make_lr(hr, 4, "a.png")
    by_steps = Degradation(jpeg_quality=75).degrade(Degradation(noise_sigma=5).degrade(nearest, 4, "a.png"), 4, "a.png")
    assert torch.equal(combined, by_steps)
    evaluation.evaluate(["flat"], [tiny], Settings(scales=(4,), degrade="nearest", limit=1), progress=False)
    assert torch.equal((flat_models["flat"].calls[0][0][0] * 255).round().to(torch.uint8), nearest)


def test_paired_dataset_reads_its_lr(tmp_path: Path, flat_models: dict[str, FlatModel]) -> None:
    root = tmp_path / "Paired"
    (root / "HR").mkdir(parents=True)
    (root / "LR_bicubic" / "X2").mkdir(parents=True)
    Image.fromarray(smooth_image(29, 32, seed=3)).save(root / "HR" / "img.png")
    given_lr = smooth_image(14, 16, seed=4)  # not the resize of the HR: proves the file is what gets used
    Image.fromarray(given_lr).save(root / "LR_bicubic" / "X2" / "imgx2.png")
    rows = evaluation.evaluate(["flat"], [root], Settings(scales=(2,)), progress=False)
    lr, out_size = flat_models["flat"].calls[0]
    assert out_size == (28, 32) and rows[1].per_image[0].name == "img"
    assert np.array_equal((lr[0] * 255).round().byte().permute(1, 2, 0).numpy(), given_lr)

    with pytest.raises(InputError):  # no X3 folder
        evaluation.evaluate(["flat"], [root], Settings(scales=(3,)), progress=False)
    Image.fromarray(smooth_image(10, 16, seed=5)).save(root / "LR_bicubic" / "X2" / "imgx2.png")
    with pytest.raises(InputError):  # wrong LR size
        evaluation.evaluate(["flat"], [root], Settings(scales=(2,)), progress=False)
    with pytest.raises(ConfigError, match="own LR"):  # its LR files cannot be made with another kernel
        evaluation.evaluate(["flat"], [root], Settings(scales=(2,), degrade="nearest"), progress=False)


def test_image_too_small_for_scale(tmp_path: Path) -> None:
    root = tmp_path / "Small"
    root.mkdir()
    Image.fromarray(smooth_image(16, 16, seed=6)).save(root / "s.png")
    with pytest.raises(InputError):
        evaluation.evaluate([], [root], Settings(scales=(4,)), progress=False)


def test_duplicate_dataset_names(tiny: Path) -> None:
    with pytest.raises(ConfigError):
        evaluation.evaluate([], [tiny, tiny], Settings(scales=(2,)), progress=False)


def test_reports(tiny: Path, tmp_path: Path) -> None:
    settings = Settings(scales=(2, 3))
    rows = evaluation.evaluate([], [tiny], settings, progress=False)
    reports = Reports(json=tmp_path / "r.json", markdown=tmp_path / "r.md")
    reports.check()
    reports.write(rows, settings)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["metric"] == "y" and len(report["rows"]) == 2
    first = report["rows"][0]
    assert set(first) == {"model", "dataset", "scale", "psnr", "ssim", "n_images", "seconds", "per_image"}
    assert set(first["per_image"][0]) == {"name", "psnr", "ssim"}
    assert (first["model"], first["dataset"], first["scale"], first["n_images"]) == ("bicubic", "Tiny", 2, 2)
    markdown = (tmp_path / "r.md").read_text()
    assert f"| Tiny | bicubic | {rows[0].psnr:.2f} / {rows[0].ssim:.4f} |" in markdown
    assert "Tiny" in evaluation.text_table(rows, settings)


def test_plot(tiny: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    settings = Settings(scales=(2, 3))
    rows = evaluation.evaluate([], [tiny], settings, progress=False)
    reports = Reports(plot=tmp_path / "psnr.png")
    reports.check()
    reports.write(rows, settings)
    assert (tmp_path / "psnr.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(OutputError):
        Reports(plot=tmp_path / "psnr.nope").check()


def test_report_paths_checked_before_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OutputError):
        Reports(json=tmp_path / "missing" / "r.json").check()
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    with pytest.raises(OutputError, match="matplotlib"):
        Reports(plot=tmp_path / "psnr.png").check()


def test_cli_eval(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    assert main(["eval", "--data", str(tiny), "--scales", "2", "--limit", "1", "--json", str(out)]) == 0
    assert "bicubic" in capsys.readouterr().out
    assert json.loads(out.read_text())["rows"][0]["n_images"] == 1
    assert main(["eval", "--data", str(tiny), "--scales", "two"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_bicubic_set5_matches_published_numbers() -> None:
    set5 = require(BENCHMARK / "Set5", "Set5 benchmark")
    rows = evaluation.evaluate([], [set5], Settings(scales=tuple(SET5_BICUBIC)), progress=False)
    measured = {row.scale: row.psnr for row in rows}
    for scale, published in SET5_BICUBIC.items():
        assert measured[scale] == pytest.approx(published, abs=PUBLISHED_TOLERANCE_DB), f"x{scale}"
