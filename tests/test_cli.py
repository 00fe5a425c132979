"""`enlarge upscale` and `enlarge models` end to end, in-process: output lines, names, and every bad input."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from enlarge.cli.main import main
from enlarge.upscaler import DEFAULT_MODEL
from enlarge.cli.upscale import progress_bar
from enlarge.models.card import ModelCard

SUMMARY = re.compile(
    r"^(?P<input>\S+) (\d+)x(\d+) → (?P<output>\S+) (\d+)x(\d+), (?P<model>\S+), \d+\.\d\d s(; choice: (?P<why>.+))?$"
)


def save(path: Path, mode: str = "RGB", size: tuple[int, int] = (30, 20)) -> Path:
    """A small noisy image file."""
    channels = len(mode)
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(path)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str], list[str]]:
    """Run the CLI; returns (exit code, stdout lines, stderr lines)."""
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def files(folder: Path) -> set[str]:
    """Every file under `folder`, hidden temporaries included."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_summary_line_and_default_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = save(tmp_path / "photo.png")
    code, out, err = run(capsys, "upscale", source, "--scale", "2.5")
    assert code == 0 and err == []
    match = SUMMARY.match(out[0])
    assert match is not None, out
    assert match.group("output") == str(tmp_path / "photo_x2.5.png")
    assert match.group("model") == DEFAULT_MODEL
    assert match.group("why") in (None, f"{DEFAULT_MODEL}: not a JPEG")  # the default model says why it ran
    assert out[0].split(" → ")[0].endswith("photo.png 30x20") and "75x50" in out[0]
    assert Image.open(tmp_path / "photo_x2.5.png").size == (75, 50)


def test_size_name_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = save(tmp_path / "photo.png")
    code, out, _ = run(capsys, "upscale", source, "--size", "64x48", "--fit", "cover", "--json")
    assert code == 0
    record = json.loads(out[0])
    assert record["output"] == str(tmp_path / "photo_64x48.png")
    assert record["input_size"] == [30, 20] and record["output_size"] == [64, 48]
    assert record["model"] == DEFAULT_MODEL and record["seconds"] >= 0
    code, out, _ = run(capsys, "upscale", source, "--scale", "2", "--json")
    assert json.loads(out[0])["output"].endswith("photo_x2.png")


def test_folder_input_with_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    save(tmp_path / "in" / "a.png")
    save(tmp_path / "in" / "b.png", "RGBA")
    code, out, _ = run(capsys, "upscale", tmp_path / "in", "--width", "45", "-o", tmp_path / "big")
    assert code == 0 and len(out) == 2
    assert {Image.open(tmp_path / "big" / n).size for n in ("a.png", "b.png")} == {(45, 30)}


def test_batch_goes_on_past_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good_a, good_b = save(tmp_path / "a.png"), save(tmp_path / "b.png", "L")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a picture")
    code, out, err = run(capsys, "upscale", good_a, bad, good_b, "--scale", "2")
    assert code != 0
    assert len(out) == 2 and (tmp_path / "a_x2.png").is_file() and (tmp_path / "b_x2.png").is_file()
    assert len(err) == 1 and err[0].startswith(f"error: {bad} is not an image")  # the path once, not twice
    assert not (tmp_path / "bad_x2.png").exists()


def test_models_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0 and out[0].split()[:5] == ["NAME", "PARAMS", "WEIGHTS", "LICENCE", "DESCRIPTION"]
    assert any(line.startswith("bicubic") for line in out)
    code, out, _ = run(capsys, "models", "--json")
    names = {json.loads(line)["name"] for line in out}
    assert {"bicubic", "lite", "liif-rdn"} <= names


def truncated(folder: Path) -> Path:
    full = save(folder / "full.png", size=(64, 64))
    data = full.read_bytes()
    full.unlink()
    path = folder / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def bomb(folder: Path) -> Path:
    path = folder / "bomb.png"
    Image.new("1", (12_000, 10_000)).save(path)  # 120 MP of zeros in a few kB: above the default 100 MP
    return path


def corrupt_checkpoints(folder: Path) -> None:
    """Random bytes as x.pth and x.safetensors, and as y.safetensors with a valid card beside it."""
    for name in ("x.pth", "x.safetensors", "y.safetensors"):
        (folder / name).write_bytes(np.random.default_rng(1).bytes(4096))
    ModelCard(name="y", arch="lite", config={"n_feats": 8, "n_resblocks": 1, "hidden": 16}).write(folder / "y.json")
    (folder / "notes.txt").write_text("hello\n")  # as --model this was `KeyError: 101`


def float_tiff(folder: Path) -> Path:
    """A valid TIFF of a kind we do not read: three float32 channels."""
    path = folder / "float.tif"
    tifffile.imwrite(path, np.random.default_rng(0).random((12, 10, 3), dtype=np.float32), photometric="rgb")
    return path


# name → (input maker, arguments after the input); {dir} is the test's folder
BAD_CASES = {
    "missing file": (lambda d: d / "nope.png", ["--scale", "2"]),
    "not an image": (lambda d: (d / "text.png").write_text("hello") and d / "text.png", ["--scale", "2"]),
    "truncated image": (truncated, ["--scale", "2"]),
    "scale 0": (lambda d: save(d / "a.png"), ["--scale", "0"]),
    "scale negative": (lambda d: save(d / "a.png"), ["--scale", "-1"]),
    "scale nan": (lambda d: save(d / "a.png"), ["--scale", "nan"]),
    "scale inf": (lambda d: save(d / "a.png"), ["--scale", "inf"]),
    "size 0x10": (lambda d: save(d / "a.png"), ["--size", "0x10"]),
    "output above limit": (lambda d: save(d / "a.png"), ["--scale", "100", "--max-output-mp", "1"]),
    "input above limit": (lambda d: save(d / "a.png"), ["--scale", "2", "--max-input-mp", "0.0001"]),
    "bomb": (bomb, ["--scale", "2"]),
    "unwritable folder": (lambda d: save(d / "a.png"), ["--scale", "2", "-o", "{dir}/a.png/out.png"]),
    "missing folder": (lambda d: save(d / "a.png"), ["--scale", "2", "-o", "{dir}/no/such/out.png"]),
    "unknown model": (lambda d: save(d / "a.png"), ["--scale", "2", "--model", "no-such-model"]),
    "corrupt .pth": (lambda d: save(d / "a.png"), ["--scale", "2", "--model", "{dir}/x.pth"]),
    "corrupt .safetensors": (lambda d: save(d / "a.png"), ["--scale", "2", "--model", "{dir}/x.safetensors"]),
    "corrupt carded .safetensors": (lambda d: save(d / "a.png"), ["--scale", "2", "--model", "{dir}/y.safetensors"]),
    "rgba to jpeg": (lambda d: save(d / "a.png", "RGBA"), ["--scale", "2", "-o", "{dir}/a.jpg"]),
    "bad background": (lambda d: save(d / "a.png", "RGBA"), ["--scale", "2", "--background", "plaid"]),
    "bad quality": (lambda d: save(d / "a.png"), ["--scale", "2", "-o", "{dir}/a.jpg", "--quality", "0"]),
    "bad device": (lambda d: save(d / "a.png"), ["--scale", "2", "--device", "abacus"]),
    "text file as model": (lambda d: save(d / "a.png"), ["--scale", "2", "--model", "{dir}/notes.txt"]),
    "/etc/passwd as model": (lambda d: save(d / "a.png"), ["--scale", "2", "--model", "/etc/passwd"]),
    "folder as model": (lambda d: save(d / "a.png"), ["--scale", "2", "--model", "{dir}"]),
    "misspelt model": (lambda d: save(d / "a.png"), ["--scale", "2", "--model", "liet"]),
    "tile below the minimum": (lambda d: save(d / "a.png"), ["--scale", "2", "--tile", "2"]),
    "float32 tiff": (float_tiff, ["--scale", "2"]),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_every_bad_input_gets_one_error_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_input, extra = BAD_CASES[case]
    corrupt_checkpoints(tmp_path)
    source = make_input(tmp_path)
    before = files(tmp_path)
    code, out, err = run(capsys, "upscale", source, *[arg.format(dir=tmp_path) for arg in extra])
    assert code != 0
    assert out == []
    assert len(err) == 1 and err[0].startswith("error: ") and len(err[0]) > len("error: ") + 10, err
    assert files(tmp_path) == before  # nothing written, not even a temporary


def test_messages_name_the_file_once_and_say_unsupported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = float_tiff(tmp_path)
    _, _, err = run(capsys, "upscale", source, "--scale", "2")
    assert err[0].count(str(source)) == 1 and "not supported" in err[0] and "corrupt" not in err[0]
    _, _, err = run(capsys, "upscale", save(tmp_path / "a.png"), "--scale", "2", "--model", "liet")
    assert "did you mean 'lite'" in err[0]


def test_one_output_file_for_several_inputs_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = save(tmp_path / "a.png"), save(tmp_path / "b.png")
    code, out, err = run(capsys, "upscale", a, b, "--scale", "2", "-o", tmp_path / "two.png")
    assert code != 0 and out == [] and len(err) == 1 and "names one image file" in err[0] and "(-o)" in err[0]
    assert not (tmp_path / "two.png").exists()


def test_an_output_clash_fails_that_file_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / "x.png"), save(folder / "x.bmp"), save(folder / "y.png")
    code, out, err = run(capsys, "upscale", folder, "--scale", "2", "-o", tmp_path / "out")
    assert code != 0 and len(out) == 2 and len(err) == 1 and "would be written to" in err[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png", "y.png"]


def test_existing_output_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = save(tmp_path / "a.png")
    target = tmp_path / "a_x2.png"
    target.write_bytes(b"keep me")
    code, out, err = run(capsys, "upscale", source, "--scale", "2")
    assert code != 0 and out == [] and len(err) == 1 and "--overwrite" in err[0]
    assert target.read_bytes() == b"keep me"
    code, _, _ = run(capsys, "upscale", source, "--scale", "2", "--overwrite")
    assert code == 0 and Image.open(target).size == (60, 40)


def test_rgba_to_jpeg_with_background(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = save(tmp_path / "a.png", "RGBA")
    code, _, err = run(capsys, "upscale", source, "--scale", "2", "-o", tmp_path / "a.jpg", "--background", "white")
    assert code == 0 and err == []
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_read_only_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = save(tmp_path / "a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = run(capsys, "upscale", source, "--scale", "2", "-o", locked / "a.png")
    finally:
        locked.chmod(0o700)
    assert code != 0 and len(err) == 1 and err[0].startswith("error: ")
    assert list(locked.iterdir()) == []


def test_progress_bar_counts_tiles(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("x.png", enabled=True) as update:
        assert update is not None
        for done in range(1, 5):
            update(done, 4)
    with progress_bar("x.png", enabled=False) as update:
        assert update is None


LIBRARY = Path(__file__).resolve().parents[1] / "src" / "enlarge"
FLAG = re.compile(r"(^|[\s(`])--[a-z]")
# Rewritten by another change of issue 19, which takes its "--route-fraction" out of its messages.
FLAG_MESSAGES_PENDING: tuple[str, ...] = ()


def raised_texts(tree: ast.AST) -> list[str]:
    """The text of every string (f-strings' literal parts included) inside each `raise` of a module."""
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            texts += [n.value for n in ast.walk(node.exc) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return texts


def test_library_errors_never_name_a_flag() -> None:
    """Messages name settings in words; only cli/ spells them as flags (errors.EnlargeError.setting)."""
    offenders = []
    for path in sorted(LIBRARY.rglob("*.py")):
        relative = path.relative_to(LIBRARY).as_posix()
        if relative.startswith(("cli/", *FLAG_MESSAGES_PENDING)):
            continue
        offenders += [f"{relative}: {text}" for text in raised_texts(ast.parse(path.read_text())) if FLAG.search(text)]
    assert offenders == []


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["serve", "--timeout", "0"], "error: the timeout (s) must be a positive number, got 0.0 (--timeout)"),
        (["serve", "--max-upload-mb", "-1"],
         "error: the upload limit (MB) must be a positive number, got -1.0 (--max-upload-mb)"),
        (["eval", "--data", ".", "--scales", ","],
         "error: no scale given: give comma-separated scales such as 2,3,4 (--scales)"),
    ],
)
def test_the_cli_adds_the_flag_of_the_setting_an_error_names(
    capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err == [line]


def test_a_setting_spelt_otherwise_gets_the_command_s_own_flag() -> None:
    from enlarge.cli.flags import with_flag
    from enlarge.errors import ConfigError

    error = ConfigError("finetune steps must be at least 1, got 0", setting="finetune_steps")
    assert with_flag(error, {"finetune_steps": "--steps"}).endswith("(--steps)")
    assert with_flag(ConfigError("x", setting="max_psnr_drop"), {}) == "x (--max-psnr-drop)"
    assert with_flag(ConfigError("x"), {"x": "--y"}) == "x"
