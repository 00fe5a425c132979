"""Training and export: deterministic sampling, bit-identical resume after SIGKILL, clean stop on SIGTERM,
config validation, and exported weights that load and reproduce the trained module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO
from enlarge.cli.main import main
from enlarge.errors import ConfigError
from enlarge.models import build, load_model
from enlarge.models.bicubic import Bicubic
from enlarge.models.macs import count_macs
from enlarge.training.checkpoint import BEST, LAST, LOG, RECORD, load_checkpoint, load_record, load_state
from enlarge.training.config import config_from_dict, load_config
from enlarge.training.data import Prefetcher, Sampling, load_training_images, make_batch, make_sample, sample_rng
from enlarge.training.export import export_run
from enlarge.training.loop import train

TINY_CONFIG = REPO / "configs" / "tiny-test.yaml"
IMAGE_SIZE = 64
IMAGES_PER_DIR = 3
POLL_S = 0.002
START_TIMEOUT_S = 120


def _write_images(root: Path) -> None:
    """Smooth random colour images (gradients plus noise) in two folders, PNG and JPEG."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] / IMAGE_SIZE
    for folder, suffix in (("A", ".png"), ("B/nested", ".jpg")):
        (root / folder).mkdir(parents=True)
        for i in range(IMAGES_PER_DIR):
            base = np.stack([yy, xx, (yy + xx) / 2], axis=-1) * rng.uniform(0.3, 1.0, 3)
            pixels = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
            Image.fromarray((pixels * 255).astype(np.uint8)).save(root / folder / f"{i}{suffix}")


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    """The tiny-test config pointed at synthetic images in tmp_path; returns its dict."""
    _write_images(tmp_path / "data")
    data = yaml.safe_load(TINY_CONFIG.read_text())
    data["data"] = {"data_root": str(tmp_path / "data"), "train_dirs": ["A", "B"], "val_list": ["A/0.png"]}
    return data


def _write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _spawn(config: Path, cwd: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "enlarge", "train", str(config), *extra],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=START_TIMEOUT_S)
    assert proc.returncode == 0, err
    return err


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(POLL_S)


def test_sampling_is_a_function_of_seed_step_and_index(setup: dict) -> None:
    config = config_from_dict(setup)
    sampling = Sampling.from_config(config)
    images, skipped = load_training_images(config.data.root, config.data.train_dirs, config.data.val_list,
                                           sampling.largest_crop)
    assert len(images) == 2 * IMAGES_PER_DIR - 1 and skipped == 0  # the val image is held out
    batch = make_batch(images, sampling, 2, seed=7, step=11)
    again = make_batch(images, sampling, 2, seed=7, step=11)
    for name in ("lr", "coord", "cell", "gt"):
        assert torch.equal(getattr(batch, name), getattr(again, name))
    lr, coord, cell, gt = make_sample(images, sampling, sample_rng(7, 11, 1))
    assert torch.equal(lr, batch.lr[1]) and torch.equal(gt, batch.gt[1]) and torch.equal(coord, batch.coord[1])
    assert not torch.equal(make_batch(images, sampling, 2, seed=7, step=12).gt, batch.gt)
    assert not torch.equal(make_batch(images, sampling, 2, seed=8, step=11).gt, batch.gt)
    assert batch.lr.shape == (2, 3, config.patch, config.patch)
    assert batch.coord.shape == batch.cell.shape == (2, config.sample_q, 2)
    assert batch.gt.shape == (2, config.sample_q, 3)
    assert batch.coord.abs().max() < 1 and 0 <= batch.gt.min() and batch.gt.max() <= 1
    crop = 2 / cell[0, 0].item()  # the cell is one HR pixel of the crop
    assert round(config.patch * config.scale_min) <= round(crop) <= round(config.patch * config.scale_max)


@pytest.mark.parametrize("workers", [0, 2], ids=["thread", "processes"])
def test_prefetched_batches_are_the_steps_batches_in_order(setup: dict, workers: int) -> None:
    """Worker processes change where batches are made, never which: batch k equals make_batch(step k)."""
    config = config_from_dict({**setup, "degrade": {"jpeg": 0.5, "noise": 0.5}})
    sampling = Sampling.from_config(config)
    images, _ = load_training_images(config.data.root, config.data.train_dirs, config.data.val_list,
                                     sampling.largest_crop)
    mix = config.degrade.mix()
    prefetch = Prefetcher(images, sampling, 2, 7, 3, 8, mix, workers=workers)
    try:
        for step in range(3, 8):
            batch, expected = next(prefetch), make_batch(images, sampling, 2, 7, step, mix)
            for name in ("lr", "coord", "cell", "gt"):
                assert torch.equal(getattr(batch, name), getattr(expected, name)), (step, name)
    finally:
        prefetch.close()


def test_a_worker_processes_error_reaches_the_training_loop(setup: dict) -> None:
    config = config_from_dict(setup)
    sampling = Sampling.from_config(config)
    prefetch = Prefetcher([], sampling, 2, 7, 0, 4, workers=1)  # no images: drawing one fails in the worker
    try:
        with pytest.raises(ValueError):
            next(prefetch)
    finally:
        prefetch.close()


# The newer recipe: cosine decay after a warm-up, a moving average of the weights, real-photo degradations.
RECIPE = {"schedule": "cosine", "decay_steps": 150, "warmup_steps": 20, "min_lr": 1e-6, "ema": 0.9,
          "degrade": {"jpeg": 0.8, "noise": 0.5, "blur": 0.3}}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [{}, RECIPE], ids=["step-decay", "cosine-ema-degrade"])
def test_sigkill_then_resume_equals_uninterrupted_run(setup: dict, tmp_path: Path, recipe: dict) -> None:
    setup = {**setup, **recipe}
    config = _write_config(tmp_path / "tiny.yaml", setup)
    _finish(_spawn(config, tmp_path, "--name", "full"))

    killed = _spawn(config, tmp_path, "--name", "cut")
    _wait_for(tmp_path / "runs" / "cut" / LAST, killed)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=START_TIMEOUT_S)
    assert killed.returncode == -signal.SIGKILL
    cut_at = load_checkpoint(tmp_path / "runs" / "cut" / LAST).step
    assert 0 < cut_at < setup["steps"]
    _finish(_spawn(config, tmp_path, "--name", "cut", "--resume"))

    full = load_checkpoint(tmp_path / "runs" / "full" / LAST)
    resumed = load_checkpoint(tmp_path / "runs" / "cut" / LAST)
    assert full.step == resumed.step == setup["steps"]
    for key, value in full.model.items():
        assert torch.equal(value, resumed.model[key]), key
    assert (full.ema is None) == (resumed.ema is None) == ("ema" not in recipe)
    for key, value in (full.ema or {}).items():
        assert torch.equal(value, resumed.ema[key]), key
    for key, value in load_state(tmp_path / "runs" / "full" / BEST).items():
        assert torch.equal(value, load_state(tmp_path / "runs" / "cut" / BEST)[key]), key
    assert full.best_psnr == resumed.best_psnr
    records = [json.loads(line) for line in (tmp_path / "runs" / "cut" / LOG).read_text().splitlines()]
    logged = [r["step"] for r in records if "loss" in r]
    assert logged == list(range(setup["log_every"], setup["steps"] + 1, setup["log_every"]))


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_a_checkpoint(setup: dict, tmp_path: Path) -> None:
    setup.update(steps=10**6, checkpoint_every=10**6, val_every=10**6)
    config = _write_config(tmp_path / "tiny.yaml", setup)
    proc = _spawn(config, tmp_path, "--name", "term")
    _wait_for(tmp_path / "runs" / "term" / LOG, proc)
    while not (tmp_path / "runs" / "term" / LOG).read_text():
        time.sleep(POLL_S)  # the log exists before the loop starts; its first line proves the handler is in place
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc)
    assert "stopped by SIGTERM" in err and "--resume" in err
    checkpoint = load_checkpoint(tmp_path / "runs" / "term" / LAST)
    assert setup["log_every"] <= checkpoint.step < setup["steps"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"learning_rate": 0.1}, "learning_rate is not a known field; known: model, data, steps"),
        ({"steps": None}, "steps is missing"),
        ({"batch_size": "16"}, "batch_size: input should be a valid integer, got '16'"),
        ({"batch_size": True}, "batch_size: input should be a valid integer, got True"),
        ({"lr": True}, "lr: must be a number, got True"),
        ({"precision": "fp16"}, "precision: input should be 'bf16', 'fp32' or 'auto'"),
        ({"sample_q": 10**6}, "sample_q (1000000) exceeds the pixels"),
        ({"model": {"arch": "lite", "name": "lite"}}, "model: give either `name`"),
        ({"model": {"name": "nope"}}, "model.name: 'nope' is not registered"),
        ({"data": {"data_root": ".", "train_dirs": ["A"], "val_list": ["B/x.png"]}},
         "data.val_list: entry 'B/x.png' is not in one of data.train_dirs"),
    ],
)
def test_bad_config_is_a_config_error(setup: dict, tmp_path: Path, change: dict, message: str) -> None:
    setup.update(change)
    setup = {k: v for k, v in setup.items() if v is not None}
    path = _write_config(tmp_path / "bad.yaml", setup)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    line = str(error.value)
    assert line.startswith(f"{path}: ") and message in line and "\n" not in line, line


def test_cli_reports_config_errors_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _write_config(tmp_path / "bad.yaml", {"steps": 1})
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "model is missing (and 1 more)" in err and err.count("\n") == 1


def test_resume_refuses_a_changed_config(setup: dict, tmp_path: Path) -> None:
    setup.update(steps=4, checkpoint_every=2, val_every=2, log_every=2)
    config = config_from_dict(setup)
    run = tmp_path / "run"
    train(config, "t", run)
    changed = config_from_dict({**setup, "lr": 0.5})
    with pytest.raises(ConfigError, match="different config"):
        train(changed, "t", run, load_checkpoint(run / LAST))


def test_export_writes_a_loadable_model(setup: dict, tmp_path: Path) -> None:
    setup.update(steps=6, checkpoint_every=3, val_every=3, log_every=3)
    run = tmp_path / "run"
    train(config_from_dict(setup), "t", run)
    out = tmp_path / "weights"
    out.mkdir()
    result = export_run(run, "tiny", out_dir=out, which="best")
    loaded = load_model(result.weights)
    assert loaded.descriptor.has_weights and loaded.descriptor.card.name == "tiny"
    card = json.loads(result.card_path.read_text())
    assert set(card["macs_per_output_pixel"]) == {"x2", "x3", "x4"} and card["parameters"] == loaded.parameters
    assert card["training"]["steps"] == 6 and card["trained_scales"] == [1.0, 4.0]

    trained = build(setup["model"]["arch"], setup["model"]["config"])
    trained.load_state_dict(load_state(run / BEST))
    trained.eval()
    lr = torch.rand(1, 3, 10, 12)
    coord = torch.rand(1, 20, 2) * 2 - 1
    cell = torch.full((1, 20, 2), 0.1)
    with torch.no_grad():
        assert torch.equal(loaded.module(lr, coord, cell), trained(lr, coord, cell))


def test_a_retired_run_keeps_its_record_and_exports_from_best(setup: dict, tmp_path: Path) -> None:
    setup.update(steps=6, checkpoint_every=3, val_every=3, log_every=3)
    start = tmp_path / "start"
    train(config_from_dict(setup), "t", start)  # weights for the retired run's init_from
    run = tmp_path / "run"
    train(config_from_dict({**setup, "init_from": str(start / BEST)}), "t", run)
    assert load_record(run) == load_checkpoint(run / LAST).record()  # run.json says what last.pt says
    before = export_run(run, "before", out_dir=tmp_path, which="best").card.training

    script = REPO / "scripts" / "retire_runs.py"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, str(script), str(run)], check=True, env=env, capture_output=True, timeout=120)
    assert not (run / LAST).exists() and (run / BEST).exists() and (run / RECORD).exists()
    record = load_record(run)
    assert record.step == 6 and record.start_psnr is not None and record.start_psnr > 0
    assert export_run(run, "after", out_dir=tmp_path, which="best").card.training == before
    with pytest.raises(ConfigError, match="not found"):
        export_run(run, "last", out_dir=tmp_path, which="last")


def test_mac_count_matches_hand_count() -> None:
    # lite, 8 features, 1 block, hidden 8, head [8]: encoder 216 + 2·576 + 576 + 576 MACs per LR pixel,
    # decoder 4 neighbours × (4·8 geometry + 8·8 + 8·3) per output pixel
    module = build("lite", {"n_feats": 8, "n_resblocks": 1, "hidden": 8, "head": [8]})
    encoder, decoder = 216 + 2 * 576 + 576 + 576, 4 * (4 * 8 + 8 * 8 + 8 * 3)
    assert count_macs(module, size=16, scales=(2, 4)) == {"x2": encoder / 4 + decoder, "x4": encoder / 16 + decoder}
    assert count_macs(Bicubic(), size=16, scales=(2,)) == {"x2": 0.0}
