"""Compressed JPEGs to the robust twin: the quality read from the quantisation tables, the route a card declares,
the default model and `auto` following it (a named model never), and the choice reported by every front-end."""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enlarge.autoselect import TwinRoute, bundled_models
from enlarge.batch.manifest import Manifest
from enlarge.cli.main import main
from enlarge.errors import ModelError
from enlarge.imageio import decode_image_bytes, read_image
from enlarge.jpegquality import (
    STANDARD_CHROMINANCE,
    STANDARD_LUMINANCE,
    estimate_quality,
    jpeg_quality,
    scaled_table,
)
from enlarge.models.card import ROBUST_TWIN, ModelCard, RobustTwin
from enlarge.models.registry import LoadedModel, build, create, describe
from enlarge.models.specs import DEFAULT_MODEL
from enlarge.sizing import SizeRequest
from enlarge.training.export import kept_entries
from enlarge.upscaler import Upscaler

SIDE = 24
TINY_LITE = {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]}
TWIN_BELOW = 60
LOW_QUALITY, HIGH_QUALITY = 20, 100  # below and above any measured threshold


def pixels(side: int = SIDE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def encoded(fmt: str = "JPEG", image: Image.Image | None = None, **options: object) -> bytes:
    buffer = io.BytesIO()
    (image or Image.fromarray(pixels())).save(buffer, fmt, **options)
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


# ------------------------------------------------------------------------------------------------ jpegquality


@pytest.mark.parametrize("subsampling", [0, 2], ids=["4:4:4", "4:2:0"])
def test_quality_is_exact_for_every_pillow_quality(subsampling: int) -> None:
    image = Image.fromarray(pixels(16))
    found = {q: jpeg_quality(opened(encoded(image=image, quality=q, subsampling=subsampling))) for q in range(1, 101)}
    assert found == {q: q for q in range(1, 101)}


def test_quality_of_grayscale_and_non_jpegs() -> None:
    gray = Image.fromarray(pixels(16)[..., 0])
    assert jpeg_quality(opened(encoded(image=gray, quality=37))) == 37  # one (luminance) table only
    for fmt, options in (("PNG", {}), ("WEBP", {"lossless": True}), ("WEBP", {"quality": 40})):
        assert jpeg_quality(opened(encoded(fmt, **options))) is None


def test_non_standard_tables_get_the_nearest_quality() -> None:
    """A camera-like table (the IJG table at q70 with every entry nudged) reads near 70; scaling a table up reads
    as a lower quality; a table that is not 64 entries is not a JPEG's, and reads as no quality."""
    rng = np.random.default_rng(1)
    luma, chroma = (np.clip(scaled_table(base, 70) + rng.integers(-1, 2, 64), 1, 255).tolist()
                    for base in (STANDARD_LUMINANCE, STANDARD_CHROMINANCE))
    assert abs(estimate_quality({0: luma}) - 70) <= 2
    flat = {0: [8] * 64, 1: [8] * 64}
    coarser = {0: [16] * 64, 1: [16] * 64}
    assert 1 <= estimate_quality(coarser) < estimate_quality(flat) <= 100
    with pytest.raises(ValueError):
        estimate_quality({0: [1] * 63})
    photo = opened(encoded(qtables=[luma, chroma]))
    assert photo.quantization[0] == luma and abs(jpeg_quality(photo) - 70) <= 2


def test_decoded_images_carry_their_jpeg_quality(tmp_path: Path) -> None:
    assert decode_image_bytes(encoded(quality=42)).jpeg_quality == 42
    assert decode_image_bytes(encoded("PNG")).jpeg_quality is None
    (tmp_path / "a.jpg").write_bytes(encoded(quality=88, subsampling=0))
    assert read_image(tmp_path / "a.jpg").jpeg_quality == 88


# ------------------------------------------------------------------------------------------------ the route


def tiny_lite_declaring(twin: str | None, below: int = TWIN_BELOW) -> LoadedModel:
    """A random-weight tiny lite whose card names `twin` as its robust twin below quality `below`."""
    torch.manual_seed(0)
    module = build("lite", TINY_LITE).eval()
    extra = {} if twin is None else {ROBUST_TWIN: {"model": twin, "below_quality": below}}
    card = ModelCard(name="tiny", arch="lite", config=TINY_LITE, extra=extra)
    return LoadedModel(module, describe("tiny", "lite", TINY_LITE, module, has_weights=False, card=card))


def test_a_route_sends_only_compressed_jpegs_to_the_twin() -> None:
    route = TwinRoute.of(tiny_lite_declaring("bicubic"))
    assert route is not None and route.twin.descriptor.name == "bicubic" and route.below_quality == TWIN_BELOW
    for quality, expected in ((None, "tiny"), (TWIN_BELOW - 1, "bicubic"), (TWIN_BELOW, "tiny"), (100, "tiny")):
        model, why = route.choose(quality)
        assert model.descriptor.name == expected
        assert (f"quality {quality}" in why) if quality is not None else ("not a JPEG" in why)


def test_no_route_without_a_declaration_or_an_installed_twin() -> None:
    assert TwinRoute.of(tiny_lite_declaring(None)) is None
    assert TwinRoute.of(tiny_lite_declaring("no-such-model")) is None  # the clean model then serves everything
    assert TwinRoute.of(tiny_lite_declaring("liif-rdn")) is None  # registered, but its weights are not bundled


def test_a_malformed_declaration_is_a_model_error() -> None:
    card = ModelCard(name="x", arch="lite", config=TINY_LITE, extra={ROBUST_TWIN: {"model": "lite-real"}})
    with pytest.raises(ModelError, match="below_quality"):
        card.robust_twin()
    card.extra[ROBUST_TWIN] = {"model": "lite-real", "below_quality": 0}
    with pytest.raises(ModelError, match="below_quality"):
        card.robust_twin()


def test_a_re_export_keeps_the_declared_twin(tmp_path: Path) -> None:
    entry = asdict(RobustTwin("lite-real", 85, {"sets": ["Set5"]}))
    path = tmp_path / "lite.json"
    ModelCard(name="lite", arch="lite", config=TINY_LITE, extra={ROBUST_TWIN: entry, "adaptive": {}}).write(path)
    assert kept_entries(path) == {ROBUST_TWIN: entry}  # the calibrations are measured again, the twin is not
    assert kept_entries(tmp_path / "missing.json") == {}


# ------------------------------------------------------------------------------------------------ shipped


@pytest.fixture(scope="module")
def shipped() -> TwinRoute:
    route = TwinRoute.of(create(DEFAULT_MODEL))
    if route is None:
        pytest.skip("the default model declares no robust twin here")
    assert LOW_QUALITY < route.below_quality <= HIGH_QUALITY
    return route


@pytest.fixture(scope="module")
def default_upscaler(shipped: TwinRoute) -> Upscaler:
    return Upscaler()


def test_the_default_model_routes_and_a_named_one_does_not(shipped: TwinRoute, default_upscaler: Upscaler) -> None:
    plan = SizeRequest(scale=2).plan((SIDE, SIDE))
    low = decode_image_bytes(encoded(quality=LOW_QUALITY))
    cases = {
        "low": (low, shipped.twin.descriptor.name),
        "high": (decode_image_bytes(encoded(quality=HIGH_QUALITY)), DEFAULT_MODEL),
        "png": (decode_image_bytes(encoded("PNG")), DEFAULT_MODEL),
    }
    for what, (image, expected) in cases.items():
        _, report = default_upscaler.upscale_image_reported(image, plan)
        assert report.model == expected, what
        assert report.choice is not None and report.choice.startswith(expected)
    routed, _ = default_upscaler.upscale_image_reported(low, plan)
    alone = Upscaler(shipped.twin.descriptor.name).upscale_image(low, plan)
    np.testing.assert_array_equal(routed.pixels, alone.pixels)  # the twin's own output, nothing blended
    _, forced = Upscaler(DEFAULT_MODEL).upscale_image_reported(low, plan)
    assert forced.model == DEFAULT_MODEL and forced.choice is None
    _, shrunk = default_upscaler.upscale_image_reported(low, SizeRequest(scale=0.5).plan((SIDE, SIDE)))
    assert shrunk.model == "lanczos" and shrunk.choice is None


def test_auto_leaves_twins_out_of_its_candidates(shipped: TwinRoute) -> None:
    names = {m.descriptor.name for m in bundled_models()}
    assert DEFAULT_MODEL in names and shipped.twin.descriptor.name not in names


def test_cli_summary_says_which_model_and_why(shipped: TwinRoute, tmp_path: Path, capsys) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(encoded(quality=LOW_QUALITY))
    assert main(["upscale", str(source), "--scale", "2", "--threads", "1"]) == 0
    line = capsys.readouterr().out
    assert f", {shipped.twin.descriptor.name}, " in line and f"choice: {shipped.twin.descriptor.name}: JPEG quality {LOW_QUALITY}" in line
    assert main(["upscale", str(source), "--scale", "2", "--model", DEFAULT_MODEL, "--json", "-o",
                 str(tmp_path / "forced.png"), "--threads", "1"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert forced["model"] == DEFAULT_MODEL and "choice" not in forced


def test_batch_manifest_records_the_model_and_choice(shipped: TwinRoute, tmp_path: Path) -> None:
    from enlarge.batch.runner import run_job
    from enlarge.batch.spec import load_job
    from enlarge.batch.workspace import manifest_path

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    (inputs / "low.jpg").write_bytes(encoded(quality=LOW_QUALITY))
    (inputs / "clean.png").write_bytes(encoded("PNG"))
    overrides = {"input": {"folder": str(inputs)}, "output": {"folder": str(out)}, "model": {"scale": 2},
                 "run": {"workers": 1, "threads": 1}}
    report = run_job(load_job(None, overrides))
    done = {Path(entry["input"]).name: entry for entry in report.to_dict()["done"]}
    assert done["low.jpg"]["model"] == shipped.twin.descriptor.name and "JPEG quality" in done["low.jpg"]["choice"]
    records = {Path(r.input).name: r for r in Manifest.read(manifest_path(out)).values()}
    assert records["low.jpg"].model == shipped.twin.descriptor.name
    assert records["clean.png"].model == DEFAULT_MODEL and "not a JPEG" in records["clean.png"].choice


def test_an_older_manifest_gains_the_model_columns(tmp_path: Path) -> None:
    path = tmp_path / "manifest.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE items (output TEXT PRIMARY KEY, input TEXT NOT NULL, state TEXT NOT NULL, "
               "params TEXT NOT NULL, input_sha256 TEXT, output_sha256 TEXT, attempts INTEGER NOT NULL DEFAULT 0, "
               "error TEXT, notes TEXT, updated REAL NOT NULL)")
    db.execute("INSERT INTO items VALUES ('a.png', '/in/a.png', 'done', 'p', 'x', 'y', 1, NULL, '[]', 0)")
    db.commit()
    db.close()
    assert Manifest.read(path)["a.png"].model is None  # read-only: the missing columns read as NULL
    manifest = Manifest.open(path)
    manifest.start("b.png", "/in/b.png", "p", "x")
    manifest.finish("b.png", "z", [], model="lite-real", choice="why")
    records = manifest.records()
    manifest.close()
    assert records["b.png"].model == "lite-real" and records["b.png"].choice == "why"
    assert records["a.png"].state == "done" and records["a.png"].model is None


def test_serve_says_which_model_and_why(shipped: TwinRoute) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    import warnings

    from enlarge.serve import ServeConfig, create_app

    with warnings.catch_warnings():  # Starlette's notice that it prefers httpx2 to the installed httpx
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    twin = shipped.twin.descriptor.name
    with TestClient(create_app(ServeConfig(workers=1))) as client:
        for data, expected, why in (
            ({}, twin, f"{twin}: JPEG quality {LOW_QUALITY}"),
            ({"model": DEFAULT_MODEL}, DEFAULT_MODEL, None),
        ):
            files = {"file": ("photo.jpg", encoded(quality=LOW_QUALITY), "image/jpeg")}
            response = client.post("/v1/upscale", files=files, data={"scale": "2", **data})
            assert response.status_code == 200, response.text
            assert response.headers["x-enlarge-model"] == expected
            choice = response.headers.get("x-enlarge-choice")
            assert choice is None if why is None else choice.startswith(why)


def test_a_pil_image_opened_from_a_jpeg_keeps_its_quality(shipped: TwinRoute) -> None:
    import enlarge
    from enlarge.pil_interface import _from_pil

    photo = opened(encoded(quality=LOW_QUALITY))
    assert _from_pil(photo).jpeg_quality == LOW_QUALITY
    assert _from_pil(photo.convert("RGB")).jpeg_quality is None  # a converted copy is no longer the JPEG
    twin = Upscaler(shipped.twin.descriptor.name).upscale_image(decode_image_bytes(encoded(quality=LOW_QUALITY)),
                                                               SizeRequest(scale=2).plan((SIDE, SIDE)))
    routed = np.asarray(enlarge.upscale(photo, scale=2), dtype=np.float32) / 255
    np.testing.assert_allclose(routed, twin.pixels, atol=1 / 255)
