"""`enlarge batch`: a killed job resumes to byte-identical outputs, re-runs skip, changes redo, bad inputs are
reported, the Ray engine matches the local one, and spec errors are one line.

Tiny images and the weight-free `bicubic` model keep it fast (adaptive jobs: a tiny random-weight `lite` with a
calibration, written as weights and card). The kill test slows each item with the documented test hook
ENLARGE_BATCH_ITEM_DELAY_S so that the job is still running when it is killed.
"""

from __future__ import annotations

import json
import os
import re
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
from safetensors.torch import save_file

from conftest import descendants, survivors

from enlarge.batch.runner import run_job
from enlarge.batch.spec import JobSpec, load_job
from enlarge.batch.work import ITEM_DELAY_ENV
from enlarge.batch.workspace import STATE_DIR
from enlarge.cli.main import main
from enlarge.engine.adaptive import CALIBRATION_KEY, block_errors, fit_calibration, little_model
from enlarge.models.card import ModelCard
from enlarge.models.registry import LoadedModel, build, describe, parameter_count
from enlarge.sizing import SizeRequest
from enlarge.upscaler import Upscaler

SIDE = 24
SCALE = 2
IMAGES = 30
MODES = ("RGB", "RGB", "RGB", "L", "RGBA")  # cycled over the images
KILL_AFTER = 5  # outputs that must exist before the job is killed
ITEM_DELAY_S = 0.15  # per item in the killed run: 30 items take seconds, so the kill lands mid-way
TIMEOUT_S = 120
REPO = Path(__file__).resolve().parents[1]
TINY_LITE = {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]}
CALIBRATION_SIDE = 32  # HR side of the one image the tiny model is calibrated on


def make_images(folder: Path, count: int) -> list[Path]:
    """`count` small noisy PNGs of varied modes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        mode = MODES[index % len(MODES)]
        pixels = rng.integers(0, 256, (SIDE, SIDE, len(mode)), dtype=np.uint8)
        path = folder / f"img{index:02d}.png"
        Image.fromarray(pixels[..., 0] if mode == "L" else pixels).save(path)
        paths.append(path)
    return paths


def reference(inputs: list[Path], folder: Path, scale: float = SCALE) -> dict[str, bytes]:
    """Each input enlarged in this one process by `Upscaler.enlarge_file`: output name → bytes."""
    folder.mkdir(exist_ok=True)
    upscaler = Upscaler("bicubic", threads=1)
    out = {}
    for source in inputs:
        target = folder / f"{source.stem}_x{scale:g}.png"
        upscaler.enlarge_file(source, target, SizeRequest(scale=scale))
        out[target.name] = target.read_bytes()
    return out


def write_calibrated_tiny(folder: Path) -> Path:
    """A random-weight `lite` small enough to run in milliseconds, with an adaptive calibration in its card (fit on
    one random image at ×2), as `tiny.safetensors` and `tiny.json`; returns the weights path."""
    torch.manual_seed(0)
    module = build("lite", TINY_LITE).eval()
    model = LoadedModel(module, describe("tiny", "lite", TINY_LITE, module, has_weights=False))
    hr = torch.rand(1, 3, CALIBRATION_SIDE, CALIBRATION_SIDE, generator=torch.Generator().manual_seed(0))
    hr = (hr * 255).round() / 255
    errors = block_errors(model, little_model(model), torch.nn.functional.avg_pool2d(hr, 2), hr)
    extra = {CALIBRATION_KEY: fit_calibration([errors], "bicubic", {}).to_dict()}
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(weights))
    ModelCard("tiny", "lite", TINY_LITE, parameters=parameter_count(module), extra=extra).write(folder / "tiny.json")
    return weights


def write_job(path: Path, **sections: dict) -> Path:
    path.write_text(yaml.safe_dump(sections))
    return path


def visible_files(folder: Path) -> set[str]:
    """Every file under `folder` outside the hidden state folder."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and STATE_DIR not in p.parts}


def outputs(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in visible_files(folder)}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, dict, list[str]]:
    """`enlarge batch ... --json` in this process: (exit code, report, stderr lines)."""
    code = main(["batch", *map(str, args), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err.splitlines()


def batch_process(job: Path, delay: float = 0.0) -> subprocess.Popen[str]:
    """`python -m enlarge batch JOB --json` as a child in its own process group (so it can be killed whole)."""
    env = {**os.environ, ITEM_DELAY_ENV: str(delay)}
    return subprocess.Popen(
        [sys.executable, "-m", "enlarge", "batch", str(job), "--json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, dict]:
    out, err = process.communicate(timeout=TIMEOUT_S)
    assert out, err
    return process.returncode, json.loads(out)


@pytest.mark.slow
def test_killed_job_resumes_to_identical_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = make_images(tmp_path / "in", IMAGES)
    expected = reference(inputs, tmp_path / "ref")
    out = tmp_path / "out"
    job = write_job(
        tmp_path / "job.yaml",
        input={"folder": "in"},
        model={"name": "bicubic", "scale": SCALE},
        output={"folder": "out", "naming": "{stem}_x{scale}.{ext}"},
        run={"workers": 1, "threads": 1},
    )
    killed = batch_process(job, delay=ITEM_DELAY_S)
    deadline = time.monotonic() + TIMEOUT_S
    while len(visible_files(out) if out.exists() else ()) < KILL_AFTER:
        assert killed.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline, "no outputs appeared"
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(TIMEOUT_S)
    partial = visible_files(out)
    assert KILL_AFTER <= len(partial) < IMAGES and partial <= set(expected)  # no temp files beside the outputs

    code, report = finish(batch_process(job))
    assert code == 0 and report["failed"] == []
    assert len(report["done"]) + len(report["skipped"]) == IMAGES and len(report["skipped"]) >= KILL_AFTER - 1
    assert outputs(out) == expected
    assert {Image.open(out / name).size for name in expected} == {(SIDE * SCALE, SIDE * SCALE)}
    assert list((out / STATE_DIR / "tmp").iterdir()) == []

    code, report, _ = run_cli(capsys, job)  # in this process: nothing to do, so no worker is started
    assert code == 0 and report["done"] == [] and len(report["skipped"]) == IMAGES
    assert {entry["reason"] for entry in report["skipped"]} == {"done earlier"}


@pytest.mark.slow
def test_changes_redo_and_corrupt_input_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = make_images(tmp_path / "in", 4)
    (tmp_path / "in" / "broken.png").write_bytes(inputs[0].read_bytes()[:60])  # a truncated PNG
    out = tmp_path / "out"
    flags = ("--input", tmp_path / "in", "--output", out, "--model", "bicubic", "--naming", "{stem}.png",
             "--workers", "1")
    code, report, _ = run_cli(capsys, *flags, "--scale", "2")
    assert code == 2 and len(report["done"]) == 4
    (failure,) = report["failed"]
    assert failure["input"].endswith("broken.png") and "truncated or corrupt" in failure["reason"]
    assert {Image.open(out / p.name).size for p in inputs} == {(48, 48)} and not (out / "broken.png").exists()

    (out / "img01.png").write_bytes(b"edited")
    (out / "img02.png").unlink()
    code, report, _ = run_cli(capsys, *flags, "--scale", "2", "--dry-run")
    reasons = {Path(entry["input"]).name: entry["reason"] for entry in report["plan"]}
    assert reasons["img00.png"] == "done earlier" and reasons["img02.png"] == "output missing"
    assert reasons["img01.png"].startswith("output changed") and reasons["broken.png"].startswith("failed before")

    code, report, _ = run_cli(capsys, *flags, "--scale", "3")
    assert code == 2 and len(report["done"]) == 4
    assert {Image.open(out / p.name).size for p in inputs} == {(72, 72)}


@pytest.mark.slow
def test_overwrite_policy_for_files_the_job_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_images(tmp_path / "in", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "img00_x2.png").write_bytes(b"someone else's file")
    flags = ("--input", tmp_path / "in", "--output", out, "--model", "bicubic", "--scale", "2", "--workers", "1")
    code, report, _ = run_cli(capsys, *flags, "--overwrite", "error", "--dry-run")
    assert [entry["action"] for entry in report["plan"]] == ["fail", "do"]
    code, report, _ = run_cli(capsys, *flags)  # default: skip
    assert code == 0 and report["skipped"][0]["reason"].endswith("(overwrite: skip)")
    assert (out / "img00_x2.png").read_bytes() == b"someone else's file"
    code, report, _ = run_cli(capsys, *flags, "--overwrite", "overwrite", "--write-by", "worker")
    assert code == 0 and len(report["done"]) == 1
    assert Image.open(out / "img00_x2.png").size == (48, 48)


@pytest.mark.slow
def test_ray_engine_gives_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'enlarge[ray]')")
    inputs = make_images(tmp_path / "in", 6)
    expected = reference(inputs, tmp_path / "ref")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        for write_by in ("driver", "worker"):
            out = tmp_path / f"out-{write_by}"
            overrides = {
                "input": {"folder": str(tmp_path / "in")},
                "model": {"name": "bicubic", "scale": SCALE},
                "output": {"folder": str(out), "write_by": write_by},
                "run": {"engine": "ray", "workers": 2, "threads": 1},
            }
            report = run_job(load_job(None, overrides))
            assert report.failed == [] and len(report.done) == len(inputs) and report.workers == 2
            assert outputs(out) == expected
    finally:
        ray.shutdown()


def test_dry_run_lists_the_plan_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = make_images(tmp_path / "in", 3)
    listing = tmp_path / "files.txt"
    listing.write_text(f"# two of them\nin/{inputs[0].name}\n\n{inputs[2]}\nin/missing.png\n")
    job = write_job(tmp_path / "job.yaml", input={"list": "files.txt"}, model={"name": "bicubic", "size": "40x30", "fit": "cover"},
                    output={"folder": "out", "format": "jpeg"})
    code = main(["batch", str(job), "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and not (tmp_path / "out").exists()
    assert lines[0] == f"do   {inputs[0]} → {tmp_path / 'out' / 'img00_40x30.jpg'} (new)"
    assert lines[-1] == "plan: 3 to do, 0 to skip, 0 failing"
    code = main(["batch", str(job), "--input", str(tmp_path / "in" / "*.png"), "--dry-run"])  # flags win
    assert code == 0 and capsys.readouterr().out.splitlines()[-1] == "plan: 3 to do, 0 to skip, 0 failing"
    example = run_job(load_job(REPO / "examples" / "job.yaml"), dry_run=True)
    assert {d.item.input.name for d in example.plan} == {"astronaut.png", "chelsea.png", "coffee.png"}


@pytest.mark.slow
def test_adaptive_job_runs_reports_routing_and_is_part_of_the_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = make_images(tmp_path / "in", 3)
    weights = write_calibrated_tiny(tmp_path / "model")
    flags = ("--input", tmp_path / "in", "--output", tmp_path / "out", "--model", weights, "--scale", "2",
             "--workers", "1")
    sections = {"input": {"folder": "in"}, "model": {"scale": 2, "adaptive": True}, "output": {"folder": "out"}}
    assert load_job(None, sections).parameters()["adaptive"] is True
    code, report, _ = run_cli(capsys, *flags, "--adaptive")
    assert code == 0 and len(report["done"]) == len(inputs)
    assert all(0.0 <= entry["routed_fraction"] <= 1.0 and entry["model"] == "tiny" for entry in report["done"])
    code, report, _ = run_cli(capsys, *flags, "--adaptive", "--dry-run")
    assert {entry["reason"] for entry in report["plan"]} == {"done earlier"}
    code, report, _ = run_cli(capsys, *flags, "--dry-run")  # the same job without adaptive: other outputs
    assert {entry["reason"] for entry in report["plan"]} == {"parameters changed"}


def test_adaptive_job_with_a_model_that_cannot_route_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_images(tmp_path / "in", 1)
    code = main(["batch", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--model", "bicubic",
                 "--scale", "2", "--adaptive"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and "'bicubic' has no cheap little path" in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": {"scale": 2, "adaptive": "yes"}}, "model.adaptive: input should be a valid boolean"),
        ({"model": {"scale": 2, "backend": "onnx"}}, "model.backend: input should be 'torch', got 'onnx'"),
        ({"model": {"scale": -2}}, "scale must be a positive"),
        ({"model": {"scale": 2, "colour": "red"}}, "model.colour is not a known field; known: name, scale"),
        ({"model": {"size": "100x80"}, "output": {"folder": "out", "naming": "{stem}_x{scale}.{ext}"}}, "{scale}"),
        ({"model": {"scale": 2}, "output": {"folder": "out", "naming": "{stem}_{when}.png"}}, "{when}"),
        ({"model": {"scale": 2}, "output": {"folder": "out", "format": "jpeg", "naming": "{stem}.png"}}, "jpeg"),
        ({"model": {"scale": 2}, "run": {"engine": "spark"}}, "run.engine: input should be 'local' or 'ray'"),
        ({"model": {"scale": 2}, "run": {"workers": "many"}}, "run.workers: input should be a valid integer"),
        ({"model": {"scale": 2}, "input": {"folder": "in", "glob": "*.png"}}, "exactly one of folder, glob or list"),
        ({"model": {"scale": 2}, "output": {}}, "output.folder is missing"),
    ],
)
def test_spec_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fields: dict, message: str
) -> None:
    sections = {"input": {"folder": "in"}, "output": {"folder": "out"}, **fields}
    job = write_job(tmp_path / "job.yaml", **sections)
    code = main(["batch", str(job)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {job}: ") and message in err[0], err


ORPHAN_WAIT_S = 5.0  # the workers' parent watch checks every second


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_workers_die_with_a_killed_batch(tmp_path: Path, engine: str) -> None:
    """kill -9 of the driver alone (not its group): its pool workers and the resource tracker go too; with a
    local Ray, its GCS, raylet, actors and agents (issue 19: the dashboard and runtime-env agents lived on for a
    minute)."""
    if engine == "ray":
        pytest.importorskip("ray", reason="ray is not installed (pip install 'enlarge[ray]')")
    make_images(tmp_path / "in", IMAGES)
    job = write_job(
        tmp_path / "job.yaml", input={"folder": "in"}, model={"name": "bicubic", "scale": SCALE},
        output={"folder": "out"}, run={"engine": engine, "workers": 2, "threads": 1},
    )
    driver = batch_process(job, delay=ITEM_DELAY_S)
    deadline = time.monotonic() + TIMEOUT_S
    out = tmp_path / "out"
    while len(visible_files(out) if out.exists() else ()) < 1:
        assert driver.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline, "no outputs appeared"
        time.sleep(0.05)
    children = descendants(driver.pid)
    assert len(children) >= 2  # the workers (and the resource tracker)
    driver.send_signal(signal.SIGKILL)
    driver.wait(TIMEOUT_S)
    assert survivors(children, ORPHAN_WAIT_S) == []


def test_an_item_over_its_time_limit_fails_and_the_job_resumes(tmp_path: Path, capsys) -> None:
    inputs = make_images(tmp_path / "in", 3)
    job = write_job(
        tmp_path / "job.yaml", input={"folder": "in"}, model={"name": "bicubic", "scale": SCALE},
        output={"folder": "out", "naming": "{stem}_x{scale}.{ext}"}, run={"workers": 1},
    )
    code, report, _ = run_cli(capsys, job, "--item-timeout", "1e-9")  # over the limit at the first tile's end
    assert code != 0 and report["done"] == [] and len(report["failed"]) == len(inputs)
    assert all("run.item_timeout_s" in entry["reason"] for entry in report["failed"])
    code, report, _ = run_cli(capsys, job)  # without the limit, the failed items are done
    assert code == 0 and len(report["done"]) == len(inputs)
    assert outputs(tmp_path / "out") == reference(inputs, tmp_path / "ref")


def _documented(value: object) -> str:
    """A spec default as docs/batch.md's table writes it (false, none, 100, contain)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "none" if value is None else str(value).lower()


def test_the_example_job_and_the_documented_defaults_agree_with_the_spec() -> None:
    """examples/job.yaml validates, and each one-field row of docs/batch.md's table states the spec's default."""
    example = load_job(REPO / "examples" / "job.yaml")
    assert example.model.adaptive is False and example.model.name == "bicubic"
    table = (REPO / "docs" / "batch.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| ([\w.]+) \|", table, flags=re.MULTILINE)
    assert ("model", "adaptive", "false") in rows and len(rows) >= 8
    for section, name, default in rows:
        spec = JobSpec.model_fields[section].annotation
        assert _documented(spec.model_fields[name].default) == default, f"{section}.{name}"
