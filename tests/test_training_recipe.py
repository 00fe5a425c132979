"""The training recipe's parts: schedules, the weight average, warm starts that grow a network without changing
its output, degraded batches, the time limit, the device check, and training where only the repo travels."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
import torch
from safetensors.torch import save_file

from enlarge.coords import make_coord
from enlarge.degradations import DegradationMix
from enlarge.errors import ConfigError
from enlarge.models import build
from enlarge.training.checkpoint import LAST, load_checkpoint, save_state
from enlarge.training.config import config_from_dict
from enlarge.training.data import Sampling, load_training_images, make_batch, whole_scale
from enlarge.training.pack import pack_training_data, unpack_training_data
from enlarge.training.loop import WeightAverage, lr_factor, resolve_training_device, train
from enlarge.training.warm_start import grow_state, initial_weights
from conftest import REPO
from test_training import setup  # noqa: F401  (the fixture: tiny config on synthetic images)

SMALL = {"n_feats": 8, "n_resblocks": 2, "hidden": 8, "head": [8]}
LARGE = {"n_feats": 16, "n_resblocks": 4, "hidden": 12, "head": [16]}


def _query(module: torch.nn.Module, lr: torch.Tensor) -> torch.Tensor:
    coord = make_coord((30, 26)).unsqueeze(0)
    cell = torch.full_like(coord, 2 / 30)
    with torch.no_grad():
        return module.eval()(lr, coord, cell)


def _trained_like(config: dict) -> torch.nn.Module:
    """A module with non-trivial weights everywhere (biases too), as a trained one has."""
    torch.manual_seed(3)
    module = build("lite", config)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return module


def test_growth_preserves_the_function_and_keeps_new_capacity_trainable():
    small = _trained_like(SMALL)
    large = build("lite", LARGE)
    large.load_state_dict(grow_state(small.state_dict(), large))
    lr = torch.rand(1, 3, 11, 9)
    assert (_query(small, lr) - _query(large, lr)).abs().max() < 1e-5
    large.train()
    coord = make_coord((30, 26)).unsqueeze(0)
    out = large(lr, coord, torch.full_like(coord, 2 / 30))
    out.square().mean().backward()
    new_block = large.encoder.body[3].body[2].weight  # a residual block added by the growth: starts at zero
    assert new_block.abs().max() == 0 and new_block.grad.abs().max() > 0
    assert large.to_hidden.weight.grad[:, SMALL["n_feats"]:].abs().max() > 0  # new channels get gradient


def test_growth_refuses_what_does_not_fit():
    small = _trained_like(LARGE).state_dict()
    with pytest.raises(ConfigError, match="cannot shrink|does not fit"):
        grow_state(small, build("lite", SMALL))
    with pytest.raises(ConfigError, match="no .* family|does not fit"):
        grow_state(build("bicubic", {}).state_dict() | {"x": torch.zeros(2)}, build("lite", SMALL))


def test_initial_weights_load_safetensors_pt_and_checkpoints(tmp_path: Path):
    small = _trained_like(SMALL)
    state = {k: v.contiguous() for k, v in small.state_dict().items()}
    save_file(state, tmp_path / "w.safetensors")
    save_state(tmp_path / "best.pt", state)
    save_state(tmp_path / "last.pt", {"format": 1, "model": state})
    for name in ("w.safetensors", "best.pt", "last.pt"):
        loaded = initial_weights(str(tmp_path / name), build("lite", SMALL))
        assert all(torch.equal(loaded[k], state[k]) for k in state)
    with pytest.raises(ConfigError, match="neither a registered model nor a file"):
        initial_weights(str(tmp_path / "missing.pt"), build("lite", SMALL))


def test_cosine_schedule_warms_up_decays_and_holds_the_floor(setup):  # noqa: F811
    config = config_from_dict({**setup, "schedule": "cosine", "decay_steps": 100, "warmup_steps": 10,
                               "min_lr": 1e-6, "lr": 1e-4})
    factors = [lr_factor(config, step) for step in range(130)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0, abs=0.02)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[50] == pytest.approx((0.01 + 1) / 2, abs=0.02)
    assert factors[120] == pytest.approx(0.01)
    step_decay = config_from_dict(setup)  # milestones [100, 150], gamma 0.5
    assert [lr_factor(step_decay, s) for s in (99, 100, 150)] == [1.0, 0.5, 0.25]


@pytest.mark.parametrize("change, message", [
    ({"schedule": "linear"}, "schedule: input should be 'multistep' or 'cosine'"),
    ({"schedule": "cosine"}, "needs decay_steps"),
    ({"ema": 1.0}, "ema: input should be less than 1"),
    ({"min_lr": 1.0}, "min_lr must be in"),
    ({"degrade": {"jpeg": 2}}, "degrade: jpeg must be a chance"),
    ({"degrade": {"jpeg_quality": [10]}}, r"degrade\.jpeg_quality\.1 is missing"),
    ({"degrade": {"colour": 1}}, "degrade.colour is not a known field; known: clean,"),
])
def test_recipe_fields_are_validated(setup, change, message):  # noqa: F811
    with pytest.raises(ConfigError, match=message):
        config_from_dict({**setup, **change})


def test_weight_average_follows_the_weights():
    module = torch.nn.Linear(2, 2)
    average = WeightAverage(module, 0.5)
    start = module.weight.detach().clone()
    with torch.no_grad():
        module.weight.add_(2.0)
    average.update(module)
    assert torch.allclose(average.state()["weight"], start + 1.0)


def test_degraded_batches_are_deterministic_and_differ_from_clean(setup):  # noqa: F811
    config = config_from_dict(setup)
    sampling = Sampling.from_config(config)
    images, _ = load_training_images(config.data.root, config.data.train_dirs, [], sampling.largest_crop)
    mix = DegradationMix(clean=0.0, jpeg=1.0, jpeg_quality=(30, 40))
    degraded = make_batch(images, sampling, 4, seed=1, step=5, mix=mix)
    assert torch.equal(degraded.lr, make_batch(images, sampling, 4, seed=1, step=5, mix=mix).lr)
    assert not torch.equal(degraded.lr, make_batch(images, sampling, 4, seed=1, step=5).lr)


def test_integer_scale_snaps_samples_to_whole_factors(setup):  # noqa: F811
    """integer_scale 1: every crop is a whole multiple of the LR patch (its cell says the HR size)."""
    config = config_from_dict(setup)
    sampling = Sampling.from_config(config)
    images, _ = load_training_images(config.data.root, config.data.train_dirs, [], sampling.largest_crop)
    snapped = make_batch(images, sampling, 8, seed=2, step=3, mix=DegradationMix(integer_scale=1.0))
    factors = {round(2 / float(cell[0, 0])) / sampling.patch for cell in snapped.cell}
    assert factors <= {2.0, 3.0, 4.0} and sampling.scale_max >= 4
    free = make_batch(images, sampling, 8, seed=2, step=3, mix=DegradationMix())
    assert {round(2 / float(cell[0, 0])) / sampling.patch for cell in free.cell} - {2.0, 3.0, 4.0}


def test_whole_scale_stays_in_the_range():
    sampling = Sampling(patch=8, scale_min=1.0, scale_max=4.0, sample_q=4)
    assert [whole_scale(s, sampling) for s in (1.1, 2.4, 2.6, 3.99)] == [2.0, 2.0, 3.0, 4.0]
    assert whole_scale(1.5, Sampling(patch=8, scale_min=1.0, scale_max=1.9, sample_q=4)) == 1.5


def test_integer_scale_changes_the_hash_only_when_set(setup):  # noqa: F811
    plain = config_from_dict({**setup, "degrade": {"clean": 0.4}})
    assert config_from_dict({**setup, "degrade": {"clean": 0.4, "integer_scale": 0.0}}).identity_hash() == \
        plain.identity_hash()
    assert config_from_dict({**setup, "degrade": {"clean": 0.4, "integer_scale": 0.5}}).identity_hash() != \
        plain.identity_hash()


def test_time_limit_stops_with_a_checkpoint(setup, tmp_path):  # noqa: F811
    config = config_from_dict({**setup, "steps": 100000})
    result = train(config, "timed", tmp_path / "run", max_minutes=0.02)
    assert result.stopped_by == "the time limit of 0.02 minutes"
    assert 0 < load_checkpoint(tmp_path / "run" / LAST).step == result.step < 100000


def test_cuda_is_refused_clearly_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: training on it is checked by scripts/train_on_gpu.sh")
    with pytest.raises(ConfigError, match="torch sees no CUDA GPU"):
        resolve_training_device("cuda")
    with pytest.raises(ConfigError, match="cpu or cuda"):
        resolve_training_device("mps")
    assert resolve_training_device("cpu") == torch.device("cpu")


def test_pack_keeps_paths_puts_validation_first_and_meets_its_budget(setup, tmp_path):  # noqa: F811
    config = config_from_dict(setup)
    whole = pack_training_data(config, tmp_path / "all.tar", budget_mb=10)
    assert whole.images == 6 and whole.left_out == 0 and whole.reencoded == 0
    unpack_training_data(tmp_path / "all.tar", tmp_path / "unpacked")
    for path in (config.data.root / "A").iterdir():
        assert (tmp_path / "unpacked" / "A" / path.name).read_bytes() == path.read_bytes()
    tight = pack_training_data(config, tmp_path / "tight.tar", budget_mb=whole.bytes / 1e6 * 0.75)
    assert tight.bytes <= whole.bytes * 0.75 and tight.left_out > 0 and tight.reencoded > 0
    with tarfile.open(tmp_path / "tight.tar") as tar:
        assert "A/0.png" in tar.getnames()  # the validation image always travels
    with pytest.raises(ConfigError, match="validation images alone"):
        pack_training_data(config, tmp_path / "none.tar", budget_mb=0.001)


def test_gpu_script_trains_time_boxed_and_leaves_a_cpu_loadable_checkpoint(setup, tmp_path):  # noqa: F811
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**setup, "steps": 100000}))
    pack_training_data(config_from_dict(setup), tmp_path / "pack.tar")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "scripts" / "train_on_gpu.sh"), str(config), "new",
                           str(tmp_path / "pack.tar"), str(out), "0.05", "cpu"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    checkpoint = load_checkpoint(out / "tiny" / LAST)
    assert 0 < checkpoint.step < 100000 and (out / "train.log").read_text().count("time limit") >= 1

    size = (out / "tiny" / LAST).stat().st_size
    again = subprocess.run(["bash", str(REPO / "scripts" / "train_on_gpu.sh"), str(config), str(out / "tiny" / LAST),
                            str(tmp_path / "pack.tar"), str(tmp_path / "again"), "0.05", "cpu"],
                           env={**env, "SPLIT_KIB": str(size // 3 // 1024 or 1)}, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr + again.stdout
    run = tmp_path / "again" / "tiny"
    parts = sorted(run.glob(f"{LAST}.part*"))
    assert len(parts) >= 2 and not (run / LAST).exists()  # too large to come back whole: it comes back in parts
    (run / LAST).write_bytes(b"".join(part.read_bytes() for part in parts))
    assert load_checkpoint(run / LAST).step > checkpoint.step  # rejoined, it is the resumed run's checkpoint


def test_a_degrading_config_survives_its_checkpoint_round_trip(setup):  # noqa: F811
    config = config_from_dict({**setup, "degrade": {"jpeg_quality": [40, 60]}})
    again = config_from_dict(config.to_dict())  # how export and resume read the config a checkpoint holds
    assert again.degrade == config.degrade and again.identity_hash() == config.identity_hash()
