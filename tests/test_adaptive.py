"""Little–Big adaptive enlargement: exact end points, a seamless blend, real savings, calibration, front-ends."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

import enlarge
from enlarge.cli.main import main
from enlarge.engine import render
from enlarge.engine.adaptive import (
    BLOCK,
    CALIBRATION_KEY,
    FEATHER_RADIUS,
    FULL_RENDER_SHARE,
    BlockErrors,
    Routing,
    RoutingCalibration,
    block_errors,
    block_scores,
    feathered_mask,
    fit_calibration,
    little_model,
    render_adaptive,
    render_routed,
    route_blocks,
)
from enlarge.engine.query import output_axis
from enlarge.errors import EnlargeError, ModelError
from enlarge.models.bicubic import TAPS, bicubic_grid, sample_bicubic
from enlarge.models.card import ModelCard
from enlarge.models.registry import Descriptor, LoadedModel, build, describe, load_model, parameter_count
from enlarge.sizing import SizeRequest
from enlarge.upscaler import Upscaler

TINY_LITE = {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]}
EXACT = 1e-5  # float rounding of a different decoder call split


def tiny_lite(seed: int = 0) -> LoadedModel:
    """A random-weight `lite` small enough to run in milliseconds."""
    torch.manual_seed(seed)
    module = build("lite", TINY_LITE).eval()
    return LoadedModel(module, describe("tiny-lite", "lite", TINY_LITE, module, has_weights=False))


def write_tiny(folder: Path, extra: dict | None = None) -> Path:
    """Our weights format for the tiny model: `tiny.safetensors` and its card; returns the weights path."""
    model = tiny_lite()
    weights = folder / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.module.state_dict().items()}, str(weights))
    card = ModelCard("tiny", "lite", TINY_LITE, parameters=parameter_count(model.module), extra=extra or {})
    card.write(folder / "tiny.json")
    return weights


def textured_left(h: int = 40, w: int = 48, seed: int = 0) -> torch.Tensor:
    """1×3×h×w: noise on the left half, flat grey on the right."""
    lr = torch.full((1, 3, h, w), 0.5)
    lr[..., : w // 2] = torch.rand(1, 3, h, w // 2, generator=torch.Generator().manual_seed(seed))
    return lr


class ConstantResidual(nn.Module):
    """A model that is its little path (bicubic) plus a constant residual: the residual map is known exactly."""

    receptive_field = TAPS // 2
    offset = 0.25

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        return lr

    def query(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return sample_bicubic(feat, coord) + self.offset

    def query_grid(self, feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return bicubic_grid(feat, ys, xs) + self.offset


def constant_residual() -> LoadedModel:
    """Any model whose descriptor names a little path can run adaptively: no name or architecture is checked."""
    return LoadedModel(ConstantResidual(), Descriptor("offset", "custom", {}, TAPS // 2, little="bicubic"))


def test_route_everything_is_big_and_nothing_is_little() -> None:
    model, lr, size = tiny_lite(), textured_left(), (101, 123)
    big, small = render(model, lr, size), render(little_model(model), lr, size)
    everything = render_adaptive(model, lr, size, Routing(route_fraction=1.0))
    nothing = render_adaptive(model, lr, size, Routing(route_fraction=0.0))
    assert torch.equal(everything.image, big) and everything.routed == 1.0
    assert torch.equal(nothing.image, small) and nothing.routed == 0.0 and nothing.decoded == 0.0
    most = render_adaptive(model, lr, size, Routing(route_fraction=FULL_RENDER_SHARE))  # blending would not pay
    assert torch.equal(most.image, big) and most.routed == 1.0
    # the blending path itself, forced, gives the same end points
    blocks = block_scores(lr).shape
    for tile in (None, 17):
        all_routed = render_routed(model, little_model(model), lr, size, torch.ones(blocks, dtype=torch.bool), tile)
        torch.testing.assert_close(all_routed.image, big, rtol=0, atol=EXACT)
        none_routed = render_routed(model, little_model(model), lr, size, torch.zeros(blocks, dtype=torch.bool), tile)
        torch.testing.assert_close(none_routed.image, small, rtol=0, atol=EXACT)
        assert none_routed.decoded == 0.0


@pytest.mark.parametrize("tile", [None, 13])
def test_blend_is_big_on_routed_blocks_little_far_away_and_a_ramp_between(tile: int | None) -> None:
    model, lr, size = tiny_lite(), torch.rand(1, 3, 37, 45), (111, 90)
    routed = torch.zeros(block_scores(lr).shape, dtype=torch.bool)
    routed[0, 0] = routed[2, 3] = routed[-1, -1] = True
    out = render_routed(model, little_model(model), lr, size, routed, tile)
    big, small = render(model, lr, size), render(little_model(model), lr, size)
    rows, cols = output_axis(size[0]), output_axis(size[1])
    block_rows = ((rows + 1) / 2 * lr.shape[-2] // BLOCK).long().clamp(max=routed.shape[0] - 1)
    block_cols = ((cols + 1) / 2 * lr.shape[-1] // BLOCK).long().clamp(max=routed.shape[1] - 1)
    mask = feathered_mask(routed, block_rows, block_cols, (0, size[0]), (0, size[1]))
    torch.testing.assert_close(out.image, torch.lerp(small, big, mask), rtol=0, atol=EXACT)
    hard = routed[block_rows][:, block_cols]
    assert torch.all(mask[hard] == 1) and out.routed == pytest.approx(float(hard.float().mean()))
    assert out.routed < out.decoded < 3 * out.routed  # the feather around routed blocks is decoded too, no more


def test_no_visible_step_at_region_borders() -> None:
    """Across the border of a routed region the added residual ramps: per pixel it changes by at most
    1/(2·radius+1) of itself, where a hard switch would add all of it in one step."""
    model = constant_residual()
    lr, size = textured_left(), (120, 144)
    out = render_adaptive(model, lr, size, Routing(route_fraction=0.4))
    added = out.image - render(little_model(model), lr, size)
    assert added.max() == pytest.approx(ConstantResidual.offset, abs=EXACT) and added.min() == pytest.approx(0, abs=EXACT)
    step = added.diff(dim=-1).abs().max()
    assert step <= ConstantResidual.offset / (2 * FEATHER_RADIUS + 1) + EXACT
    # a trained-like model: the step of the blend is bounded by the residual's own variation plus the ramp
    model = tiny_lite()
    out = render_adaptive(model, lr, size, Routing(route_fraction=0.4))
    small = render(little_model(model), lr, size)
    residual = render(model, lr, size) - small
    added = out.image - small
    ramp = residual.abs().max() / (2 * FEATHER_RADIUS + 1)
    assert added.diff(dim=-1).abs().max() <= residual.diff(dim=-1).abs().max() + ramp + EXACT


def test_scores_and_routing_follow_the_texture() -> None:
    lr = textured_left()
    scores = block_scores(lr)
    half = scores.shape[1] // 2
    assert scores.shape == (5, 6) and torch.all(scores[:, half:] == 0) and torch.all(scores[:, :half] > 100)
    routed = route_blocks(scores, Routing(route_fraction=0.5), None, 2.0)
    assert torch.all(routed[:, :half]) and not routed[:, half:].any()
    with pytest.raises(ModelError, match="calibrate-adaptive"):
        route_blocks(scores, Routing(), None, 2.0)


def test_settings_and_models_that_cannot_route_are_refused() -> None:
    with pytest.raises(EnlargeError):
        Routing(threshold=1.0, route_fraction=0.5)
    with pytest.raises(EnlargeError):
        Routing(route_fraction=1.5)
    with pytest.raises(ModelError, match="little path"):
        Upscaler("bicubic", adaptive=True, route_fraction=0.5)
    with pytest.raises(ModelError, match="calibrate-adaptive"):
        Upscaler(tiny_lite(), adaptive=True)
    with pytest.raises(EnlargeError, match="needs adaptive enlargement"):
        Upscaler(tiny_lite(), route_fraction=0.5)


def test_only_routed_regions_cost_decoder_and_encoder_work() -> None:
    """The saving is real work not done: decoder queries only under the mask, encoder only near routed regions."""
    model, little = tiny_lite(), little_model(tiny_lite())
    module = model.module
    lr, size = torch.rand(1, 3, 96, 64), (384, 256)
    decoded, encoded = [], []
    grid, encode = module.query_grid, module.encode
    module.query_grid = lambda feats, ys, xs, cell: decoded.append(len(ys) * len(xs)) or grid(feats, ys, xs, cell)
    module.encode = lambda crop: encoded.append(crop.shape[-2] * crop.shape[-1]) or encode(crop)
    routed = torch.zeros(block_scores(lr).shape, dtype=torch.bool)
    routed[:2] = True  # the top 16 LR rows: a sixth of the image
    out = render_routed(model, little, lr, size, routed)
    assert out.routed == pytest.approx(1 / 6)
    assert sum(decoded) == out.decoded * size[0] * size[1] < 0.25 * size[0] * size[1]
    margin = model.descriptor.receptive_field
    assert sum(encoded) <= (16 + 1 + 2 * margin) * 64 < lr.shape[-2] * lr.shape[-1]
    # two regions far apart (opposite corners) are encoded as two windows, not their bounding box
    encoded.clear()
    routed = torch.zeros_like(routed)
    routed[0, 0] = routed[-1, -1] = True
    render_routed(model, little, lr, size, routed)
    assert len(encoded) == 2 and sum(encoded) <= 2 * (BLOCK + 1 + 2 * margin) ** 2


def synthetic_errors(scale: float, seed: int) -> BlockErrors:
    """Blocks where big beats little in proportion to the score (the shape a trained model gives)."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(200, generator=generator, dtype=torch.float64) * 1000
    pixels = torch.full((200,), 64.0 * scale**2, dtype=torch.float64)
    little = (10 + scores / 10) * pixels
    return BlockErrors(scale, scores, little, little * (1 - scores / 4000) / scale, pixels)


def test_calibration_lookup_threshold_and_card_round_trip() -> None:
    samples = [synthetic_errors(scale, seed) for scale in (2.0, 4.0) for seed in range(3)]
    calibration = fit_calibration(samples, "bicubic", {"images": 3})
    assert len(calibration.edges) == 15 and set(calibration.scales) == {2.0, 4.0}
    low, high = torch.tensor([5.0], dtype=torch.float64), torch.tensor([950.0], dtype=torch.float64)
    assert calibration.expected_gain(high, 2.0) > calibration.expected_gain(low, 2.0) > 0
    three = calibration.expected_gain(high, 3.0)
    assert calibration.expected_gain(high, 2.0) < three < calibration.expected_gain(high, 4.0)  # interpolated
    for table in calibration.scales.values():
        s = table.summary
        assert table.threshold > 0 and 0 < s["routed"] < 1
        assert s["psnr_adaptive"] - s["psnr_little"] >= 0.95 * (s["psnr_big"] - s["psnr_little"])
    stored = json.loads(json.dumps(calibration.to_dict()))
    assert RoutingCalibration.from_dict(stored, "test") == calibration
    with pytest.raises(ModelError, match="another version or score"):
        RoutingCalibration.from_dict({**stored, "score": "other"}, "test")
    with pytest.raises(ModelError, match="malformed"):
        RoutingCalibration.from_dict({**stored, "edges": None}, "test")


def test_a_big_model_that_never_helps_routes_nothing_by_default() -> None:
    model = constant_residual()  # bicubic + 0.25 everywhere: worse than bicubic on every block
    generator = torch.Generator().manual_seed(0)
    hr = (torch.rand(1, 3, 48, 64, generator=generator) * 255).round() / 255
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    errors = block_errors(model, little_model(model), lr, hr)
    assert errors.pixels.sum() == 48 * 64 and torch.all(errors.sse_big > errors.sse_little)
    calibration = fit_calibration([errors], "bicubic", {})
    assert calibration.scales[2.0].summary["psnr_big"] < calibration.scales[2.0].summary["psnr_little"]
    model.descriptor.card = ModelCard("offset", "custom", {}, extra={CALIBRATION_KEY: calibration.to_dict()})
    assert RoutingCalibration.of(model.descriptor) == calibration
    out = render_adaptive(model, lr, (48, 64))
    assert out.routed == 0.0 and torch.equal(out.image, render(little_model(model), lr, (48, 64)))


def test_upscaler_api_and_cli_report_the_routed_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = write_tiny(tmp_path)
    image = tmp_path / "in.png"
    pixels = (textured_left(24, 32)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    Image.fromarray(pixels).save(image)
    result = Upscaler(weights, adaptive=True, route_fraction=0.4).enlarge_file(
        image, tmp_path / "out.png", SizeRequest(scale=3)
    )
    assert result.routed_fraction == pytest.approx(0.4, abs=0.05) and result.to_dict()["routed_fraction"]
    big = enlarge.upscale(image, scale=3, model=str(weights), adaptive=True, route_fraction=1.0)
    plain = enlarge.upscale(image, scale=3, model=str(weights))
    assert np.array_equal(np.asarray(big), np.asarray(plain))
    assert main(["upscale", str(image), "--scale", "2", "--model", str(weights), "--adaptive",
                 "--route-fraction", "0.4", "-o", str(tmp_path / "cli.png")]) == 0
    line = capsys.readouterr().out.strip()
    assert re.search(r", tiny adaptive 4\d% routed, \d+\.\d\d s$", line)


def calibration_config(folder: Path, size: tuple[int, int]) -> Path:
    """A training config over two noise images of `size` (H, W) in `folder`, one of them held out; its path."""
    data = folder / "data" / "set"
    data.mkdir(parents=True)
    for seed in range(2):
        noise = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(noise).save(data / f"{seed}.png")
    config = folder / "config.yaml"
    config.write_text(f"model: {{name: lite}}\ndata: {{data_root: {folder / 'data'}, train_dirs: [set], "
                      "val_list: [set/0.png]}\nsteps: 1\n")
    return config


def test_calibrate_command_writes_the_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = write_tiny(tmp_path)
    config = calibration_config(tmp_path, (40, 48))
    assert main(["calibrate-adaptive", "--model", str(weights), "--config", str(config), "--images", "2",
                 "--scales", "2,4"]) == 0
    assert "wrote the adaptive calibration of tiny" in capsys.readouterr().out
    calibration = RoutingCalibration.of(load_model(weights).descriptor)
    assert calibration is not None and set(calibration.scales) == {2.0, 4.0}
    assert calibration.data["images"] == 2


# ---- Little–Big over the family: detail routed against lite (random weights: no detail weights needed) ----------

TINY_DETAIL = {"n_feats": 8, "n_resblocks": 3, "hidden": 16, "head": [16]}  # deeper than tiny lite, as detail is


def tiny_pair(seed: int = 0) -> tuple[LoadedModel, LoadedModel]:
    """A random-weight model named `detail` (so it takes detail's companion from the spec) and a random tiny lite
    as its little model."""
    torch.manual_seed(seed)
    module = build("lite", TINY_DETAIL).eval()
    big = LoadedModel(module, describe("detail", "lite", TINY_DETAIL, module, has_weights=False))
    return big, tiny_lite(seed + 1)


def test_detail_declares_lite_as_its_little_with_patch_routing() -> None:
    detail = load_model_spec("detail")
    assert detail.little == "lite" and detail.route_block > BLOCK and detail.route_context is not None
    assert detail.route_context < detail.receptive_field  # a short context: exact windows would cover the image
    lite = load_model_spec("lite")
    assert lite.little == "bicubic" and lite.route_block == BLOCK and lite.route_context is None


def load_model_spec(name: str) -> Descriptor:
    """The descriptor of a registered model built with random weights (no weights file needed)."""
    from enlarge.models.registry import create

    return create(name, pretrained=False).descriptor


def test_detail_route_all_is_detail_and_route_none_is_lite() -> None:
    big, little = tiny_pair()
    lr, size = torch.rand(1, 3, 70, 76, generator=torch.Generator().manual_seed(3)), (280, 304)
    plain_big, plain_little = render(big, lr, size), render(little, lr, size)
    everything = render_adaptive(big, lr, size, Routing(route_fraction=1.0), little=little)
    nothing = render_adaptive(big, lr, size, Routing(route_fraction=0.0), little=little)
    assert torch.equal(everything.image, plain_big) and torch.equal(nothing.image, plain_little)
    block, context = big.descriptor.route_block, big.descriptor.route_context
    blocks = block_scores(lr, block).shape
    for tile in (None, 40):  # the blending path itself, forced, with detail's patches and short context
        all_routed = render_routed(big, little, lr, size, torch.ones(blocks, dtype=torch.bool), tile,
                                   block=block, context=context)
        torch.testing.assert_close(all_routed.image, plain_big, rtol=0, atol=EXACT)
        none_routed = render_routed(big, little, lr, size, torch.zeros(blocks, dtype=torch.bool), tile,
                                    block=block, context=context)
        torch.testing.assert_close(none_routed.image, plain_little, rtol=0, atol=EXACT)


def test_detail_patches_skip_the_big_encoder_and_blend_seamlessly() -> None:
    """Unrouted patches cost no big encoder work; the blend ramps across patch borders; with the exact context
    it is exactly lerp(little, big, mask)."""
    big, little = tiny_pair()
    lr, size = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(4)), (384, 384)
    block, context = big.descriptor.route_block, big.descriptor.route_context
    routed = torch.zeros(block_scores(lr, block).shape, dtype=torch.bool)
    routed[0, 0] = routed[-1, -1] = routed[0, -1] = True  # three of nine patches, none adjacent to the next
    encoded, encode = [], big.module.encode
    big.module.encode = lambda crop: encoded.append(crop.shape[-2] * crop.shape[-1]) or encode(crop)
    out = render_routed(big, little, lr, size, routed, block=block, context=context)
    assert len(encoded) == 3 and sum(encoded) <= 3 * (block + 1 + 2 * context) ** 2 < lr.shape[-2] * lr.shape[-1]
    assert out.routed == pytest.approx(3 / 9) and out.routed < out.decoded < 1.2 * out.routed
    assert out.encoded == pytest.approx(sum(encoded) / (lr.shape[-2] * lr.shape[-1]))
    small = render(little, lr, size)
    added, residual = out.image - small, render(big, lr, size) - small
    ramp = residual.abs().max() / (2 * FEATHER_RADIUS + 1)
    for dim in (-1, -2):
        assert added.diff(dim=dim).abs().max() <= residual.diff(dim=dim).abs().max() + ramp + EXACT
    big.module.encode = encode
    exact = render_routed(big, little, lr, size, routed, block=block, context=None)
    rows, cols = output_axis(size[0]), output_axis(size[1])
    block_rows = ((rows + 1) / 2 * lr.shape[-2] // block).long().clamp(max=routed.shape[0] - 1)
    block_cols = ((cols + 1) / 2 * lr.shape[-1] // block).long().clamp(max=routed.shape[1] - 1)
    mask = feathered_mask(routed, block_rows, block_cols, (0, size[0]), (0, size[1]))
    torch.testing.assert_close(exact.image, torch.lerp(small, render(big, lr, size), mask), rtol=0, atol=EXACT)


def test_calibrate_adaptive_on_detail_weights_given_as_a_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint export named detail (random weights here) calibrates against lite, on detail's patches."""
    big, _ = tiny_pair()
    weights = tmp_path / "detail.safetensors"
    save_file({k: v.contiguous() for k, v in big.module.state_dict().items()}, str(weights))
    ModelCard("detail", "lite", TINY_DETAIL, parameters=parameter_count(big.module)).write(tmp_path / "detail.json")
    config = calibration_config(tmp_path, (72, 80))
    assert main(["calibrate-adaptive", "--model", str(weights), "--config", str(config), "--images", "2",
                 "--scales", "2"]) == 0
    assert "wrote the adaptive calibration of detail" in capsys.readouterr().out
    loaded = load_model(weights)
    calibration = RoutingCalibration.of(loaded.descriptor)
    assert calibration is not None and calibration.little == "lite"
    assert calibration.block == loaded.descriptor.route_block
