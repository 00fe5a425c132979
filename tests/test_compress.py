"""`enlarge compress`: the entropy metric against a hand computation, linear-activation configs, exact merges
(equal outputs, only where cheaper), block drops, and the command end to end on a tiny model, resume included."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from conftest import REPO
from enlarge.cli.main import main
from enlarge.compress import loop as compress_loop
from enlarge.compress import report
from enlarge.compress.entropy import EntropyProbe, rectifier_names
from enlarge.compress.loop import ROUND, STATE, CompressSettings, start
from enlarge.compress.merge import merge_exact
from enlarge.compress.surgery import Network, block_site, drop_block
from enlarge.coords import make_coord
from enlarge.engine import render
from enlarge.errors import ModelError
from enlarge.models import build, load_model
from enlarge.models.card import ModelCard
from enlarge.training.checkpoint import load_state
from enlarge.training.export import write_model

TINY_CONFIG = REPO / "configs" / "tiny-test.yaml"
TINY_LITE = {"n_feats": 8, "n_resblocks": 2, "hidden": 8, "head": [8, 8]}
TINY_LIIF_ENCODER = {"name": "edsr", "n_resblocks": 1, "n_feats": 4}
EXACT = 1e-5
IMAGE_SIZE = 64
SEED = 0
OUT_SIZE = (25, 30)
STOP_AT = 3  # fine-tune step a stopped run is interrupted at


def _h(p: float) -> float:
    """Binary entropy in bits, by hand."""
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def _network(arch: str, config: dict) -> Network:
    torch.manual_seed(SEED)
    module = build(arch, config)
    return Network(arch, config, {k: v.detach().clone() for k, v in module.state_dict().items()})


def _points(net: Network, lr: torch.Tensor) -> torch.Tensor:
    """The model's point query at every pixel centre of an OUT_SIZE output → 1×3×H×W."""
    coord = make_coord(OUT_SIZE).view(1, -1, 2)
    cell = torch.tensor([2 / OUT_SIZE[0], 2 / OUT_SIZE[1]]).expand(1, coord.shape[1], 2)
    with torch.inference_mode():
        return net.build()(lr, coord, cell).view(1, *OUT_SIZE, 3).permute(0, 3, 1, 2)


def test_entropy_of_toy_layers_matches_hand_computation() -> None:
    linear = nn.Sequential(nn.ReLU())
    probe = EntropyProbe(linear)
    # channel 0: two positive, one negative, one exact zero (discarded); channel 1: always on
    x = torch.tensor([[1.0, 1.0], [-1.0, 2.0], [2.0, 3.0], [0.0, 4.0]])
    with probe.active():
        linear(x)
    (layer,) = probe.results()
    assert layer.kind == "linear" and layer.neurons == 2 and layer.dead == 0 and layer.samples == 7
    assert layer.entropy == pytest.approx((_h(2 / 3) + 0.0) / 2)
    assert (layer.p_on_min, layer.p_on_max) == pytest.approx((2 / 3, 1.0))

    conv = nn.Sequential(nn.ReLU(inplace=True))  # in place: the probe must see the input before the ReLU
    probe = EntropyProbe(conv)
    x = -torch.ones(1, 2, 2, 2)
    x[0, 0, 0, 0] = 5.0  # channel 0: on at 1 of 4 positions; channel 1: never on (dead)
    with probe.active():
        conv(x)
        conv(-torch.ones(1, 2, 2, 2))  # a second call adds four more negatives per channel
    (layer,) = probe.results()
    assert layer.kind == "conv" and layer.neurons == 2 and layer.dead == 1
    assert layer.entropy == pytest.approx(_h(1 / 8) / 2)
    assert (layer.p_on_min, layer.p_on_max) == pytest.approx((0.0, 1 / 8))


def test_linear_activations_config_rebuilds_identity() -> None:
    module = build("lite", {**TINY_LITE, "linear_activations": ["head.0", "encoder.body.1.body.1"]})
    assert isinstance(module.head[0], nn.Identity) and isinstance(module.encoder.body[1].body[1], nn.Identity)
    assert "head.0" not in rectifier_names(module) and "head.1.layers.1" in rectifier_names(module)
    with pytest.raises(ModelError, match="not a module"):
        build("lite", {**TINY_LITE, "linear_activations": ["head.9"]})
    with pytest.raises(ModelError, match="not a ReLU"):
        build("lite", {**TINY_LITE, "linear_activations": ["to_hidden"]})


def test_merged_lite_decoder_equals_unmerged() -> None:
    linear = ["head.0", "head.1.layers.1", "encoder.body.0.body.1"]
    net = _network("lite", {**TINY_LITE, "linear_activations": linear})
    merged, records = merge_exact(net)
    # head.0 folds to_hidden + from_geometry + the first head Linear; the next ReLU (now head.0) folds again
    assert len(records) == 2 and merged.config["head"] == [] and merged.config["hidden"] == TINY_LITE["head"][1]
    assert merged.linear == ["encoder.body.0.body.1"]  # conv stacks are never merged
    assert sum(v.numel() for v in merged.state.values()) < sum(v.numel() for v in net.state.values())
    lr = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(SEED))
    assert (_points(net, lr) - _points(merged, lr)).abs().max() < EXACT
    # the engine's grid fast path on the merged model agrees with its point query
    assert (render(merged.loaded("t"), lr, OUT_SIZE) - _points(merged, lr)).abs().max() < EXACT


def test_linearized_lite_head_renders_like_its_point_query() -> None:
    net = _network("lite", {**TINY_LITE, "linear_activations": ["head.0"]})
    lr = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(SEED))
    assert (render(net.loaded("t"), lr, OUT_SIZE) - _points(net, lr)).abs().max() < EXACT


def test_mlp_merges_only_where_cheaper() -> None:
    cheaper = _network("liif", {"encoder": TINY_LIIF_ENCODER, "hidden": [16, 16],
                                "linear_activations": ["imnet.layers.1"]})
    merged, records = merge_exact(cheaper)
    assert merged.config["hidden"] == [16] and "linear_activations" not in merged.config and len(records) == 1
    assert records[0]["max_abs_change"] < EXACT
    # a 2-wide bottleneck between 40 inputs and 64 outputs is cheaper than the 40×64 Linear a merge would make
    bottleneck = _network("liif", {"encoder": TINY_LIIF_ENCODER, "hidden": [2, 64],
                                   "linear_activations": ["imnet.layers.1"]})
    assert merge_exact(bottleneck) == (bottleneck, [])


def test_drop_block_renumbers_weights_and_names() -> None:
    net = _network("lite", {**TINY_LITE, "linear_activations": ["encoder.body.0.body.1", "encoder.body.1.body.1"]})
    site = block_site(net)
    dropped = drop_block(net, site, 0)
    assert dropped.config["n_resblocks"] == 1 and dropped.linear == ["encoder.body.0.body.1"]
    assert torch.equal(dropped.state["encoder.body.0.body.0.weight"], net.state["encoder.body.1.body.0.weight"])
    assert torch.equal(dropped.state["encoder.body.1.weight"], net.state["encoder.body.2.weight"])  # the tail conv
    assert dropped.build().encoder.receptive_field == net.build().encoder.receptive_field - 2


def _write_images(root: Path) -> None:
    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] / IMAGE_SIZE
    (root / "A").mkdir(parents=True)
    for i in range(3):
        base = np.stack([yy, xx, (yy + xx) / 2], axis=-1) * rng.uniform(0.3, 1.0, 3)
        pixels = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(root / "A" / f"{i}.png")


@pytest.fixture
def tiny_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Synthetic images, a tiny-test training config on them, and a tiny lite model with its card."""
    monkeypatch.setattr(report, "TIME_LR_SIZE", (16, 16))
    _write_images(tmp_path / "data")
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["data"] = {"data_root": str(tmp_path / "data"), "train_dirs": ["A"], "val_list": ["A/0.png"]}
    config.update(val_every=2, log_every=1, checkpoint_every=1)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "models").mkdir()
    torch.manual_seed(SEED)
    module = build("lite", TINY_LITE)
    weights = write_model(module, ModelCard(name="tiny", arch="lite", config=TINY_LITE), tmp_path / "models").weights
    return {"weights": weights, "config": tmp_path / "tiny.yaml", "run": tmp_path / "run", "out": tmp_path / "out",
            "data": tmp_path / "data" / "A"}


def _compress(run: dict, *extra: str) -> int:
    return main(["compress", "--model", str(run["weights"]), "--config", str(run["config"]), "--name", "tiny-c",
                 "--run-dir", str(run["run"]), "--steps", "3", "--calibration-batches", "2", "--max-psnr-drop", "100",
                 "--time-repeats", "1", "--out", str(run["out"]), *extra])


@pytest.mark.slow
def test_compress_end_to_end(tiny_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compress", "--report", "--model", str(tiny_run["weights"]), "--data", str(tiny_run["data"]),
                 "--scales", "2", "--limit", "1"]) == 0
    table = capsys.readouterr().out
    teacher = build("lite", TINY_LITE)
    assert all(name in table for name in rectifier_names(teacher)) and "entropy" in table

    tiny_run["out"].mkdir()
    markdown = tmp_path / "compression.md"
    assert _compress(tiny_run, "--remove", "1", "--markdown", str(markdown)) == 0
    state = load_state(tiny_run["run"] / STATE)
    first = state["rounds"][0]
    assert state["removed"] == 1 and first["kind"] == "linearize" and first["accepted"]
    assert first["entropy"] == min(e["entropy"] for e in first["entropies"])
    assert first["target"] == min(first["entropies"], key=lambda e: e["entropy"])["name"]
    loaded = load_model(tiny_run["out"] / "tiny-c.safetensors")
    card = json.loads((tiny_run["out"] / "tiny-c.json").read_text())
    summary = card["extra"]["compression"]
    assert summary["compressed"]["relus"] < summary["teacher"]["relus"] == len(rectifier_names(teacher))
    assert card["parameters"] == loaded.parameters and set(card["macs_per_output_pixel"]) == {"x2", "x3", "x4"}
    assert summary["cpu_time"]["repeats"] == 1 and summary["compressed"]["cpu_time_s"] > 0
    assert "| tiny-c |" in markdown.read_text()
    out = render(loaded, torch.rand(1, 3, 8, 8), (20, 20))
    assert out.shape == (1, 3, 20, 20) and torch.isfinite(out).all()

    # resume the finished run with a larger budget: it carries on from its state
    assert _compress(tiny_run, "--remove", "2", "--resume") == 0
    resumed = load_state(tiny_run["run"] / STATE)
    assert resumed["removed"] == 2 and resumed["rounds"][: len(state["rounds"])] == state["rounds"]
    # settings that shape the weights may not change on resume
    assert _compress(tiny_run, "--remove", "3", "--resume", "--lr", "0.5") == 2
    assert "other settings (lr differ)" in capsys.readouterr().err


def test_layers_restricts_the_candidates(tiny_run: dict, tmp_path: Path) -> None:
    settings = CompressSettings(finetune_steps=2, lr=0.01, distill=0.0, calibration_batches=2, max_psnr_drop=100,
                                remove=1, layers=("head",))
    result = start(str(tiny_run["weights"]), tiny_run["config"], settings, name="t", run_dir=tmp_path / "r").run()
    first = result.state["rounds"][0]
    decoder = [e for e in first["entropies"] if e["name"].startswith("head")]
    assert any(not e["name"].startswith("head") for e in first["entropies"])  # every layer is still measured
    assert first["target"] == min(decoder, key=lambda e: e["entropy"])["name"]


def test_a_stopped_round_resumes_bit_for_bit(tiny_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CompressSettings(finetune_steps=6, lr=0.01, distill=0.0, calibration_batches=2, max_psnr_drop=100,
                                remove=1)
    weights, config = str(tiny_run["weights"]), tiny_run["config"]
    full = start(weights, config, settings, name="t", run_dir=tmp_path / "full").run()

    real_step, calls = compress_loop.train_step, []

    def stop_at_third(*args: object, **kwargs: object) -> float:
        calls.append(1)
        if len(calls) == STOP_AT:
            signal.raise_signal(signal.SIGTERM)  # the run's handler only records it: the step completes
        return real_step(*args, **kwargs)

    monkeypatch.setattr(compress_loop, "train_step", stop_at_third)
    cut = start(weights, config, settings, name="t", run_dir=tmp_path / "cut").run()
    assert cut.stopped_by == "SIGTERM" and load_state(tmp_path / "cut" / ROUND)["step"] == STOP_AT
    monkeypatch.setattr(compress_loop, "train_step", real_step)
    resumed = start(weights, config, settings, name="t", run_dir=tmp_path / "cut", resume=True).run()

    assert resumed.stopped_by is None and not (tmp_path / "cut" / ROUND).exists()
    assert resumed.state["rounds"] == full.state["rounds"]
    ours, theirs = resumed.state["accepted"]["network"]["state"], full.state["accepted"]["network"]["state"]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(1, settings.finetune_steps + 1))
