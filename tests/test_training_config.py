"""The training config's hash is what matches checkpoints to configs: it stays the same for every committed config
and checkpoint (pinned here as the hand-written validator computed them), a checkpoint's stored config still
validates and resumes, and a run still exports from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import REPO
from enlarge.errors import ConfigError
from enlarge.models import load_model
from enlarge.training.checkpoint import LAST, load_checkpoint
from enlarge.training.config import config_from_dict, load_config
from enlarge.training.export import export_run
from enlarge.training.loop import train
from enlarge.validation import replace

CONFIGS = REPO / "configs"
# identity_hash() of each config as the dataclass validator (before pydantic) computed it; runs and their
# checkpoints carry these, so `--resume` depends on them never changing.
PINNED_HASHES = {
    "detail.yaml": "79f1f9cf3dfa1ebf",
    "lite-anneal.yaml": "b73e566da4d40a18",
    "lite-real.yaml": "ed5755bc96a225f1",
    "lite.yaml": "066fd02b776683a5",
    "tiny-test.yaml": "8191f350246eb124",
    "detail-anneal.yaml": "b811b062e036ac76",
    "lite-real2.yaml": "07dfcbe4ae369e7b",
    "lite-real3.yaml": "4bfe5ec1d8955f8d",
    "detail-anneal2.yaml": "a08e40e52505c3b6",
    "detail-anneal3.yaml": "65aa445ef3c1f671",
    "lite-real4.yaml": "41273c0e0b663ad1",
    "lite-real5.yaml": "183999389e176570",
    "detail-real.yaml": "dd972c35e9bf3ee7",
    "lite-real6.yaml": "c415526d0e01633e",
    "detail-gpu.yaml": "7dbd10cb97133ed0",
}
CHECKPOINT_RUNS = sorted(path.parent for path in (REPO / "checkpoints").glob(f"*/{LAST}"))


def test_every_committed_config_has_its_hash_pinned() -> None:
    assert {path.name for path in CONFIGS.glob("*.yaml")} == set(PINNED_HASHES)


@pytest.mark.parametrize("name", sorted(PINNED_HASHES))
def test_config_hash_is_unchanged(name: str) -> None:
    assert load_config(CONFIGS / name).identity_hash() == PINNED_HASHES[name]


def restricted(config: dict, like: dict) -> dict:
    """`config` with only the keys `like` has, section by section (fields added since `like` was stored drop out)."""
    return {k: restricted(config[k], v) if isinstance(v, dict) else config[k] for k, v in like.items()}


@pytest.mark.parametrize("run", CHECKPOINT_RUNS, ids=lambda run: run.name)
def test_committed_checkpoint_still_matches_and_resumes(run: Path, tmp_path: Path) -> None:
    checkpoint = load_checkpoint(run / LAST)
    stored = config_from_dict(checkpoint.config, source=str(run / LAST))
    assert stored.identity_hash() == checkpoint.config_hash
    again = config_from_dict(stored.to_dict()).to_dict()
    assert again == stored.to_dict() and restricted(again, checkpoint.config) == checkpoint.config
    config = load_config(CONFIGS / f"{run.name}.yaml")  # what `enlarge train configs/NAME.yaml --resume` reads
    assert config.identity_hash() == checkpoint.config_hash
    threads = torch.get_num_threads()
    try:  # the resume checks pass and, at the checkpoint's own step, the run ends before any work
        result = train(replace(config, "test", steps=checkpoint.step), run.name, tmp_path, checkpoint)
    finally:
        torch.set_num_threads(threads)
    assert result.step == checkpoint.step and result.best_psnr == checkpoint.best_psnr


@pytest.mark.slow
@pytest.mark.parametrize("run", CHECKPOINT_RUNS, ids=lambda run: run.name)
def test_committed_checkpoint_exports(run: Path, tmp_path: Path) -> None:
    checkpoint = load_checkpoint(run / LAST)
    result = export_run(run, "exported", out_dir=tmp_path, which="best")
    assert result.card.training["config_hash"] == checkpoint.config_hash
    assert load_model(result.weights).descriptor.card.name == "exported"


def test_numbers_may_be_yaml_text_but_not_booleans() -> None:
    data = {"model": {"name": "lite"}, "data": {"data_root": ".", "train_dirs": ["A"]}, "steps": 10}
    assert config_from_dict({**data, "lr": "1e-4", "scale_max": 3}).lr == 1e-4
    assert isinstance(config_from_dict({**data, "scale_max": 3}).scale_max, float)  # hashed as 3.0, as before
    with pytest.raises(ConfigError, match=r"^c: lr: must be a number, got True$"):
        config_from_dict({**data, "lr": True}, source="c")


def test_replace_validates_like_the_file() -> None:
    config = load_config(CONFIGS / "tiny-test.yaml")
    assert replace(config, "c", steps=5).steps == 5
    with pytest.raises(ConfigError, match=r"^c: steps: input should be greater than 0, got 0$"):
        replace(config, "c", steps=0)
