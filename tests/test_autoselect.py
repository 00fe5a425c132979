"""`--model auto`: the speed profile, time predictions, and the per-image choice with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enlarge.autoselect import (
    PROFILE_ENV,
    ModelTiming,
    Profile,
    Selector,
    bundled_models,
    measure,
    profile_path,
)
from enlarge.cli.main import main
from enlarge.engine.adaptive import CALIBRATION_KEY, RoutingCalibration, ScaleTable
from enlarge.errors import ConfigError, EnlargeError, ModelError
from enlarge.models.card import ModelCard
from enlarge.models.registry import LoadedModel, build, create, describe
from enlarge.sizing import SizeRequest
from enlarge.upscaler import Upscaler

TINY_LITE = {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]}
BICUBIC_S_PER_MP = 0.05
LITE_S_PER_MP = 2.0
EDGES = (10.0, 100.0)  # three score bins: flat, some texture, strong texture
LITTLE_MSE = (1.0, 20.0, 100.0)
BIG_MSE = (0.99, 15.0, 50.0)  # +0.04 dB on flat blocks, +3 dB on strong texture


def calibrated_lite(calibrated: bool = True) -> LoadedModel:
    """A tiny random `lite` whose card carries a hand-made calibration (or none)."""
    torch.manual_seed(0)
    module = build("lite", TINY_LITE).eval()
    table = ScaleTable(LITTLE_MSE, BIG_MSE, threshold=1.0)
    calibration = RoutingCalibration(EDGES, {2.0: table, 4.0: table}, "bicubic")
    extra = {CALIBRATION_KEY: calibration.to_dict()} if calibrated else {}
    card = ModelCard("lite-test", "lite", TINY_LITE, extra=extra)
    return LoadedModel(module, describe("lite-test", "lite", TINY_LITE, module, has_weights=True, card=card))


def profile_for(*models: LoadedModel, rates: dict[str, float] | None = None) -> Profile:
    """A profile with fixed seconds per megapixel (the same at every scale)."""
    rates = rates or {}
    timings = {
        m.descriptor.name: ModelTiming(m.descriptor.arch, dict(m.descriptor.config), "fp32",
                                       {2.0: rates.get(m.descriptor.name, BICUBIC_S_PER_MP)})
        for m in models
    }
    return Profile(timings, {"cpu": "test"})


def selector(budget: float | None = None, calibrated: bool = True) -> Selector:
    lite = calibrated_lite(calibrated)
    bicubic = create("bicubic")
    return Selector([bicubic, lite], profile_for(bicubic, lite, rates={"lite-test": LITE_S_PER_MP}), budget)


FLAT = torch.full((1, 3, 64, 64), 0.4)
TEXTURED = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_profile_path_and_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert profile_path() == tmp_path / "cache" / "enlarge" / "profile.json"
    monkeypatch.setenv(PROFILE_ENV, str(tmp_path / "p.json"))
    assert profile_path() == tmp_path / "p.json"
    profile = profile_for(create("bicubic"))
    profile.write(profile_path())
    assert Profile.read(profile_path()) == profile
    with pytest.raises(ConfigError, match="enlarge profile"):
        Profile.read(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"version": 1, "models": {"x": {"arch": "lite"}}}))
    with pytest.raises(ConfigError, match="malformed"):
        Profile.read(tmp_path / "bad.json")


def test_prediction_fits_decoder_and_encoder_terms() -> None:
    # 0.5 s/MP for the decoder plus 4 s/MP of input for the encoder: 0.5 + 4/s² per output megapixel
    timing = ModelTiming("lite", {}, "fp32", {s: 0.5 + 4 / s**2 for s in (2.0, 3.0, 4.0)})
    assert timing.predict(8.0, 2.0) == pytest.approx(2 * (0.5 + 4 / 64))
    assert ModelTiming("bicubic", {}, "fp32", {2.0: 0.1}).predict(5.0, 3.0) == pytest.approx(0.3)


def test_measure_times_every_model_at_every_scale() -> None:
    profile = measure([create("bicubic"), calibrated_lite()], scales=(2.0, 3.0), side=16, repeats=1)
    assert set(profile.models) == {"bicubic", "lite-test"}
    assert all(set(t.seconds_per_mp) == {2.0, 3.0} and min(t.seconds_per_mp.values()) > 0
               for t in profile.models.values())
    assert profile.machine["threads"] >= 1


def test_smooth_image_at_x2_gets_the_little_model() -> None:
    choice = selector().choose(FLAT, (128, 128))
    assert choice.model.descriptor.name == "bicubic" and choice.fits
    assert "lite-test would add only 0.04 dB" in choice.reason


def test_textured_image_gets_the_big_model_when_it_fits() -> None:
    choice = selector(budget=10.0).choose(TEXTURED, (256, 256))
    assert choice.model.descriptor.name == "lite-test" and choice.expected_gain_db == pytest.approx(3.01, abs=0.01)
    assert choice.reason.startswith("expected +3.01 dB") and "≤ 10 s budget" in choice.reason
    assert choice.predicted_s == pytest.approx(LITE_S_PER_MP * 256 * 256 / 1e6)


def test_budget_decides_and_nothing_fitting_takes_the_fastest() -> None:
    tight = selector(budget=0.05).choose(TEXTURED, (256, 256))  # lite needs 0.13 s
    assert tight.model.descriptor.name == "bicubic" and tight.fits
    assert "lite-test (predicted 0.13 s) does not fit the 0.05 s budget" in tight.reason
    none = selector(budget=1e-4).choose(TEXTURED, (256, 256))
    assert none.model.descriptor.name == "bicubic" and not none.fits
    assert none.reason.startswith("nothing fits the 0.0001 s budget; took the fastest")
    assert selector(budget=1e-4).choose(TEXTURED, (256, 256), passes=2).predicted_s == pytest.approx(
        2 * none.predicted_s
    )


def test_uncalibrated_model_counts_as_worth_it_and_unprofiled_is_refused() -> None:
    choice = selector(calibrated=False).choose(FLAT, (128, 128))
    assert choice.model.descriptor.name == "lite-test" and choice.reason.startswith("gain not calibrated")
    with pytest.raises(ModelError, match="enlarge profile"):
        Selector([calibrated_lite()], profile_for(create("bicubic")))
    with pytest.raises(ConfigError):
        Selector([create("bicubic")], profile_for(create("bicubic")), time_budget=0)


def test_upscaler_and_cli_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(PROFILE_ENV, str(tmp_path / "profile.json"))
    profile_for(*bundled_models()).write(tmp_path / "profile.json")
    image = tmp_path / "flat.png"
    Image.fromarray(np.full((20, 30, 3), 120, dtype=np.uint8)).save(image)
    result = Upscaler("auto", time_budget=5).enlarge_file(image, tmp_path / "out.png", SizeRequest(scale=2))
    assert result.model in {m.descriptor.name for m in bundled_models()} and result.choice
    assert result.to_dict()["choice"] == result.choice
    assert main(["upscale", str(image), "--scale", "2", "--model", "auto", "-o", str(tmp_path / "cli.png")]) == 0
    assert "; choice: " in capsys.readouterr().out
    with pytest.raises(EnlargeError, match=r"automatic model choice \(model 'auto'\)"):
        Upscaler("bicubic", time_budget=5)


def test_profile_command_writes_and_shows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.json"
    profile_for(calibrated_lite()).write(path)  # an entry not measured this time is kept
    assert main(["profile", "--model", "bicubic", "--output", str(path)]) == 0
    assert set(Profile.read(path).models) == {"bicubic", "lite-test"}
    capsys.readouterr()
    assert main(["profile", "--show", "--output", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "bicubic" in shown and "×4 s/MP" in shown


def test_a_profile_taken_with_other_threads_is_flagged() -> None:
    lite, bicubic = calibrated_lite(), create("bicubic")
    profile = profile_for(bicubic, lite)
    other = Profile(profile.models, {"threads": torch.get_num_threads() + 1})
    assert "re-run enlarge profile" in Selector([bicubic, lite], other).choose(TEXTURED, (128, 128)).reason


def test_gains_chain_through_little_models() -> None:
    """A model refining lite (as detail does) gains over bicubic its own gain over lite plus lite's; lite, being
    a little model with a little of its own, keeps its gain instead of counting as a baseline."""
    import dataclasses

    lite, bicubic = calibrated_lite(), create("bicubic")
    torch.manual_seed(1)
    module = build("lite", TINY_LITE).eval()
    table = ScaleTable(LITTLE_MSE, BIG_MSE, threshold=1.0)
    card = ModelCard("detail-test", "lite", TINY_LITE, extra={
        CALIBRATION_KEY: RoutingCalibration(EDGES, {2.0: table, 4.0: table}, "lite-test").to_dict()})
    described = describe("detail-test", "lite", TINY_LITE, module, has_weights=True, card=card)
    detail = LoadedModel(module, dataclasses.replace(described, little="lite-test"))
    chooser = Selector([bicubic, lite, detail], profile_for(bicubic, lite, detail), 10.0)
    scores = torch.full((8, 8), 1000.0)
    assert chooser.expected_gain_db(lite, scores, 2.0) == pytest.approx(3.01, abs=0.01)
    assert chooser.expected_gain_db(detail, scores, 2.0) == pytest.approx(6.02, abs=0.01)
    assert chooser.expected_gain_db(bicubic, scores, 2.0) == 0.0
