"""Seeded fuzzing of `enlarge upscale`, the HTTP API, a real `enlarge serve` and `enlarge batch` with malformed
inputs: every case must end cleanly.

    PYTHONPATH=src python benchmarks/fuzz.py --cases 300 --seed 0            # print the table
    PYTHONPATH=src python benchmarks/fuzz.py --cases 300 --seed 0 --write    # also write docs/results/fuzz.md

Each case is a small image file, usually damaged (cut short, bytes flipped, emptied, a foreign format under an
image extension, a header announcing a huge image, an unsupported TIFF, an animation, corrupt EXIF), under an
ordinary or a hostile name, with size, tile and model arguments drawn from good and bad values (zero, negative, NaN,
infinite, not numbers, unknown and misspelt models, text files and truncated weights as models). The seed picks
its front-end (FRONT_SHARES):

- **cli**: `enlarge upscale` (`enlarge.cli.main.main`, in this process);
- **api**: FastAPI's TestClient on `create_app`: the worker pool, the decoder, the model and the encoder;
- **service**: one real `enlarge serve` process on a free localhost port, sent multipart requests over HTTP;
- **batch**: `enlarge batch` (in this process, with one spawned worker) on a folder of a few fuzzed inputs, each
  input one case.

What is counted:

- **traceback**: an exception other than the CLI's own exit escaped, a Python warning was raised, a traceback or
  an error logged by uvicorn reached stderr (this process's, its batch workers', the server's and its workers'), or
  a batch item crashed (an untyped exception in its worker);
- **stray stderr**: any other line on stderr that is not ours (ours: `error:` lines, argparse's usage, uvicorn's
  INFO lines), such as a third-party library's log message;
- **5xx**: an API or service answer with a 5xx status;
- **partial output**: a file left behind that is not a complete image, any new file after a failed case or item,
  a file left in a batch's temporary folder, a 200 whose body is not a complete image;
- **hang**: a case running past HANG_S seconds (a batch job: HANG_S per input; stopped by an alarm).

A clean case either succeeds, or fails with exactly one `error:` line per failed input (CLI) or for a refused job
(batch), a one-line reason per failed batch item, or a 4xx JSON body.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import random
import re
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tifffile
from PIL import Image

from enlarge.batch.workspace import STATE_DIR, TMP_DIR
from enlarge.formats import INPUT_EXTENSIONS
from enlarge.serve.launch import ServeProcess
from machine_info import cpu_summary

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results" / "fuzz.md"
HANG_S = 30  # issue 19: no case may run longer
MAX_SIDE = 24  # images stay tiny so a case takes milliseconds
FRONTS = ("cli", "api", "service", "batch")
HTTP_FRONTS = ("api", "service")
# Of the cases, the share of each front-end. A batch job costs seconds (its worker process starts and loads
# torch), so batch gets the smallest share, in jobs of BATCH_FILES inputs (each input one case).
FRONT_SHARES = {"cli": 0.35, "api": 0.25, "service": 0.3, "batch": 0.1}
BATCH_FILES = (6, 14)  # the fewest and most inputs of one batch job
# Drawn per case: a batch case holds the mean of BATCH_FILES inputs, so it is drawn that much less often.
FRONT_WEIGHTS = [FRONT_SHARES[front] / (sum(BATCH_FILES) / 2 if front == "batch" else 1) for front in FRONTS]
BATCH_INPUT, BATCH_OUTPUT = "in", "out"  # a batch case's folders
BATCH_STATES = ("done", "skipped", "failed")  # the item lists of `enlarge batch --json`
BATCH_CRASH = "crashed"  # how a batch report's reason starts when the worker raised an untyped exception
HOSTILE_SHARE = 0.2  # of the inputs, how many get a hostile name
API_MAX_MP = 0.05  # the fuzzed server's input and output limits (megapixels)
API_TIMEOUT_S = 20
# The API's app and the real service get the same limits (ServeConfig's fields), given to the service as flags.
SERVE_LIMITS = {"workers": 1, "queue": 4, "max_upload_mb": 1, "max_input_mp": API_MAX_MP,
                "max_output_mp": API_MAX_MP, "timeout_s": API_TIMEOUT_S}
SERVE_FLAGS = {"workers": "--workers", "queue": "--queue", "max_upload_mb": "--max-upload-mb",
               "max_input_mp": "--max-input-mp", "max_output_mp": "--max-output-mp", "timeout_s": "--timeout"}
SERVE_START_S = 300  # for `enlarge serve` to start its worker (minutes on a starved machine)
SERVE_STOP_S = 30
# A traceback, a warning (Pillow's `UserWarning: ...`) or an error logged by uvicorn, on any stderr.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|\b\w+Warning: |^ERROR:")
# The lines of ours on stderr: `error:` lines and argparse's usage (CLI, batch), uvicorn's INFO lines (service).
OURS_CLI = re.compile(r"error: |usage: |\s|enlarge( \w+)?: error: ")
OURS_SERVER = re.compile(r"INFO: ")
HTTP_CLIENT_ERROR, HTTP_SERVER_ERROR = 400, 500
DETAIL_CHARS = 120  # of a body or a reason, kept in an outcome's detail
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
MODES = ("L", "LA", "RGB", "RGBA", "P", "1", "I;16")
HUGE_SIDE = 100_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GOOD_SCALES = ("2", "2.5", "0.5", "1", "3")
SCALES = (*GOOD_SCALES, "0", "-1", "nan", "inf", "1e308", "abc", "2x", "")
# Of the cases, how many get only valid arguments, so that the input alone decides: with every argument fuzzed,
# nearly every case stops at an argument before its file is read, and outputs are rarely made and checked.
VALID_SHARE = 0.5
BICUBIC_SHARE = 0.5  # of the valid cases, how many name the weight-free model rather than the default
SIZES = ("40x30", "0x10", "10x", "x", "-5x5", "99999999x99999999")
LENGTHS = ("40", "0", "-5", "1.5", "abc", "99999999999999999999")
TILES = (None, None, "16", "2", "0", "-1")
HOSTILE_NAMES = ("a b.png", "ünïcødé.png", "x" * 200 + ".png", "-dash.png", "dots..png", "no_extension")
API_FIELDS = ("scale", "width", "height", "fit", "model", "adaptive", "format")
API_FIT = ("contain", "cover", "pad", "stretch", "squash")
API_FORMAT = ("png", "jpeg", "webp", "gif")
API_MODELS = ("bicubic", "lite", "", "liet", "/etc/passwd", "liif-rdn")
EXIT_ARGPARSE = 2  # argparse's own exit status for unusable arguments


class Hang(Exception):
    """Raised by the alarm when a case runs past HANG_S."""


@dataclass
class Case:
    """One fuzz case: its front-end, the files to create, and either arguments (CLI, batch) or an HTTP form."""

    front: str
    kinds: list[str]  # what was done to the input (batch: to each input), for the table: one outcome each
    inputs: list[str]  # the input files among `files` (batch: in the order of `kinds`)
    files: dict[str, bytes]  # path under the case's folder → bytes
    args: list[str] = field(default_factory=list)  # CLI and batch: {dir} is the case's folder
    form: list[tuple[str, str]] = field(default_factory=list)  # API and service: the form fields besides `file`


@dataclass
class Outcome:
    """What a case (a batch item) did."""

    front: str
    kind: str
    clean: bool = True
    traceback: bool = False
    stray: bool = False  # a line on stderr that is not ours
    server_error: bool = False  # a 5xx
    partial: bool = False
    hang: bool = False
    detail: str = ""
    seconds: float = 0.0
    case: str = ""  # the arguments or the form, to replay it

    def flag(self, defect: str, detail: str) -> None:
        """Mark the case not clean: `defect` is a counted field (traceback, partial, ...) or "" for another."""
        if defect:
            setattr(self, defect, True)
        self.clean = False
        self.detail = self.detail or detail


# ---------------------------------------------------------------------------------------------------- inputs


def image_bytes(rng: random.Random) -> tuple[bytes, str]:
    """A small valid image in a random mode and format, and its usual extension."""
    fmt = rng.choice(list(FORMATS))
    mode = rng.choice(MODES)
    w, h = rng.randint(1, MAX_SIDE), rng.randint(1, MAX_SIDE)
    pixels = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (h, w, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = image.convert("I").point(lambda v: v * 257).convert("I;16") if fmt in ("PNG", "TIFF") else image
    if fmt == "JPEG" and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):  # a mode this format cannot hold: PNG holds them all
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        fmt = "PNG"
    return buffer.getvalue(), FORMATS[fmt]


def huge_png() -> bytes:
    """A PNG whose header announces HUGE_SIDE² pixels, with valid CRCs and a tiny body."""
    ihdr = struct.pack(">IIBBBBB", HUGE_SIDE, HUGE_SIDE, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    data = zlib.compress(b"\x00" * 64)
    idat = struct.pack(">I", len(data)) + b"IDAT" + data + struct.pack(">I", zlib.crc32(b"IDAT" + data))
    return PNG_SIGNATURE + chunk + idat + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def odd_tiff(rng: random.Random) -> bytes:
    """A valid TIFF of a kind that is not read: float RGB, or five 16-bit channels."""
    buffer = io.BytesIO()
    if rng.random() < 0.5:
        tifffile.imwrite(buffer, np.zeros((6, 8, 3), np.float32), photometric="rgb")
    else:
        tifffile.imwrite(buffer, np.zeros((6, 8, 5), np.uint16), photometric="rgb", planarconfig="contig",
                         extrasamples=["unassalpha", "unspecified"])
    return buffer.getvalue()


def bad_exif_jpeg() -> bytes:
    """A JPEG whose EXIF block has a nonsense first entry (Pillow warns about it, once per tag)."""
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "Camera"
    data = bytearray(exif.tobytes())
    data[12:20] = b"\xff" * 8
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), "red").save(buffer, format="JPEG", exif=bytes(data))
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("P", (8, 8), colour) for colour in (1, 2, 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def damaged(rng: random.Random) -> tuple[str, bytes, str]:
    """(what was done, bytes, extension) of one input file."""
    data, ext = image_bytes(rng)
    kind = rng.choice(
        ["intact", "truncated", "bit-flipped", "zero-byte", "wrong extension", "huge header", "random bytes",
         "text", "odd TIFF", "animated", "header only", "bad EXIF"]
    )
    if kind == "truncated":
        data = data[: rng.randint(1, max(1, len(data) - 1))]
    elif kind == "bit-flipped":
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        data = bytes(flipped)
    elif kind == "zero-byte":
        data = b""
    elif kind == "wrong extension":
        ext = rng.choice([e for e in FORMATS.values() if e != ext])
    elif kind == "huge header":
        data, ext = huge_png(), ".png"
    elif kind == "random bytes":
        data = rng.randbytes(rng.randint(1, 512))
    elif kind == "text":
        data = b"hello, this is not an image\n"
    elif kind == "odd TIFF":
        data, ext = odd_tiff(rng), ".tif"
    elif kind == "animated":
        data, ext = animated_gif(), ".gif"
    elif kind == "bad EXIF":
        data, ext = bad_exif_jpeg(), ".jpg"
    elif kind == "header only":
        data = data[:32]
    return kind, data, ext


def size_args(rng: random.Random) -> list[str]:
    choice = rng.random()
    if choice < 0.6:
        return ["--scale", rng.choice(SCALES)]
    if choice < 0.75:
        return ["--size", rng.choice(SIZES), "--fit", rng.choice(("contain", "cover", "pad", "stretch"))]
    if choice < 0.9:
        return [rng.choice(("--width", "--height")), rng.choice(LENGTHS)]
    return ["--scale", "2", "--width", "40"]  # two sizes at once


def model_args(rng: random.Random, files: dict[str, bytes]) -> list[str]:
    choice = rng.random()
    if choice < 0.45:
        return ["--model", "bicubic"]
    if choice < 0.7:
        return []  # the default model
    bad = rng.choice(["liet", "/etc/passwd", "text", "truncated", "folder", "pickle"])
    if bad == "text":
        files["model.txt"] = b"hello\n"
        return ["--model", "{dir}/model.txt"]
    if bad == "truncated":
        from enlarge.models.specs import SPECS, bundled_weights

        weights = bundled_weights(SPECS["lite"])
        if weights is None:
            return ["--model", "liet"]
        files["cut.safetensors"] = weights.read_bytes()[: rng.randint(1, 4096)]
        files["cut.json"] = weights.with_suffix(".json").read_bytes()
        return ["--model", "{dir}/cut.safetensors"]
    if bad == "folder":
        return ["--model", "{dir}"]
    if bad == "pickle":
        files["junk.pth"] = b"\x80\x02" + rng.randbytes(64)
        return ["--model", "{dir}/junk.pth"]
    return ["--model", bad]


def make_case(rng: random.Random, room: int = BATCH_FILES[1]) -> Case:
    """One case, its front-end drawn by FRONT_SHARES; a batch case has at most `room` inputs."""
    front = rng.choices(FRONTS, weights=FRONT_WEIGHTS)[0]
    if front == "batch":
        return batch_case(rng, min(room, rng.randint(*BATCH_FILES)))
    kind, data, ext = damaged(rng)
    name = input_name(rng, ext)
    if front in HTTP_FRONTS:
        return Case(front, [kind], [name], {name: data}, form=http_form(rng))
    files = {name: data}
    args = [f"{{dir}}/{name}", *job_args(rng, files)]
    inputs = [name]
    if rng.random() < 0.15:  # a second input, and an output named like a file
        files["second.png"] = image_bytes(rng)[0]
        inputs.append("second.png")
        args += ["{dir}/second.png", "-o", "{dir}/out.png"]
    return Case("cli", [kind], inputs, files, args=args)


def batch_case(rng: random.Random, count: int) -> Case:
    """A folder of `count` fuzzed inputs for one `enlarge batch` job (one small worker) with fuzzed arguments."""
    files: dict[str, bytes] = {}
    kinds = []
    for index in range(count):
        kind, data, ext = damaged(rng)
        path = f"{BATCH_INPUT}/{input_name(rng, ext, index)}"
        if path in files:  # a hostile name drawn twice
            path = f"{BATCH_INPUT}/{index}{Path(path).name}"
        files[path] = data
        kinds.append(kind)
    inputs = list(files)
    args = ["--input", f"{{dir}}/{BATCH_INPUT}", "--output", f"{{dir}}/{BATCH_OUTPUT}", "--workers", "1",
            "--threads", "1", "--json", *job_args(rng, files)]
    return Case("batch", kinds, inputs, files, args=args)


def input_name(rng: random.Random, ext: str, index: int | str = "") -> str:
    return rng.choice(HOSTILE_NAMES) if rng.random() < HOSTILE_SHARE else f"input{index}{ext}"


def job_args(rng: random.Random, files: dict[str, bytes]) -> list[str]:
    """Size, model, tile and output-limit arguments: `enlarge upscale` and `enlarge batch` take the same flags."""
    if rng.random() < VALID_SHARE:
        return ["--scale", rng.choice(GOOD_SCALES), *(["--model", "bicubic"] if rng.random() < BICUBIC_SHARE else [])]
    args = [*size_args(rng), *model_args(rng, files)]
    if (tile := rng.choice(TILES)) is not None:
        args += ["--tile", tile]
    if rng.random() < 0.1:
        args += ["--max-output-mp", rng.choice(("0", "-1", "0.0001", "nan"))]
    return args


def plan(cases: int, seed: int) -> list[Case]:
    """The seeded cases, `cases` outcomes in all (a batch case is one outcome per input)."""
    rng = random.Random(seed)
    planned: list[Case] = []
    total = 0
    while total < cases:
        planned.append(make_case(rng, room=cases - total))
        total += len(planned[-1].kinds)
    return planned


def http_form(rng: random.Random) -> list[tuple[str, str]]:
    """The form fields of an API or service request besides `file`: valid ones, or fuzzed ones."""
    if rng.random() < VALID_SHARE:
        return [("scale", rng.choice(GOOD_SCALES)), *([("model", "bicubic")] if rng.random() < BICUBIC_SHARE else [])]
    form = [(key, api_value(rng, key)) for key in rng.sample(API_FIELDS, rng.randint(0, 3))]
    if rng.random() < 0.1:
        form.append(rng.choice([("scael", "2"), ("scale", "2"), ("file", "x")]))  # unknown or repeated
    return form


def api_value(rng: random.Random, key: str) -> str:
    if key == "scale":
        return rng.choice(SCALES)
    if key in ("width", "height"):
        return rng.choice(LENGTHS)
    if key == "fit":
        return rng.choice(API_FIT)
    if key == "model":
        return rng.choice(API_MODELS)
    if key == "adaptive":
        return rng.choice(("true", "false", "maybe"))
    return rng.choice(API_FORMAT)


# ---------------------------------------------------------------------------------------------------- checks


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise Hang in this (main) thread after `seconds`."""

    def expire(signum: int, frame: object) -> None:
        raise Hang()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def complete_image(data: bytes) -> bool:
    """Whether Pillow decodes `data` to the end: anything less is a partial output."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except Exception:  # anything Pillow cannot fully decode is a partial output
        return False


def incomplete(paths: Iterable[Path]) -> list[str]:
    """The names of those files that are not complete images."""
    return sorted(path.name for path in paths if not complete_image(path.read_bytes()))


def judge_stderr(outcome: Outcome, text: str, ours: re.Pattern[str]) -> None:
    """Every non-blank line of stderr must be one of `ours`: a traceback, a warning or a logged error counts as a
    traceback, anything else (a library's log line) as stray."""
    for line in text.splitlines():
        if TRACEBACK.search(line):
            outcome.flag("traceback", line)
        elif line.strip() and not ours.match(line):
            outcome.flag("stray", line)


@dataclass
class MainRun:
    """What one in-process run of `enlarge.cli.main.main` did."""

    code: int
    stdout: str
    stderr: str  # this process's, and its child processes' (batch workers)
    problem: str | None  # an escaped exception or a Python warning
    hang: bool


@contextlib.contextmanager
def fd_stderr() -> Iterator[io.StringIO]:
    """Point file descriptor 2 at a temporary file, which child processes inherit; its text lands in the buffer."""
    text = io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            file.seek(0)
            text.write(file.read().decode("utf-8", "replace"))


def run_main(argv: list[str], limit_s: int = HANG_S) -> MainRun:
    """`enlarge ARGV` in this process, under `limit_s`, catching what it prints, warns and raises."""
    from enlarge.cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    code, problem, hang = 0, None, False
    with warnings.catch_warnings(record=True) as caught, fd_stderr() as children, \
            contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        warnings.simplefilter("always")
        try:
            with time_limit(limit_s):
                code = main(argv)
        except SystemExit as exc:  # argparse refusing the arguments: a usage line and exit 2
            code = exc.code if isinstance(exc.code, int) else EXIT_ARGPARSE
        except Hang:
            hang = True
        except Exception:
            problem = traceback.format_exc().splitlines()[-1]
    err = stderr.getvalue() + children.getvalue()
    problem = problem or (str(caught[0].message) if caught else None)
    return MainRun(code, stdout.getvalue(), err, problem, hang)


def judge_run(outcome: Outcome, run: MainRun) -> None:
    """A run must end in time, without a traceback, and print only its own lines on stderr."""
    if run.hang:
        outcome.flag("hang", "ran past its time limit")
    if run.problem is not None:
        outcome.flag("traceback", run.problem)
    judge_stderr(outcome, run.stderr, OURS_CLI)


def judge_refusal(outcome: Outcome, run: MainRun) -> None:
    """A failed run must say why on stderr: `error:` lines, or argparse's usage."""
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    if run.code != 0 and not run.hang and not errors and "usage:" not in run.stderr:
        outcome.flag("", f"exit {run.code} without an error line")


def judge_response(outcome: Outcome, response: Any) -> None:
    """An HTTP answer must be a 4xx with one JSON `error` line, or a 200 whose body is a complete image."""
    if response.status_code >= HTTP_SERVER_ERROR:
        outcome.flag("server_error", f"{response.status_code}: {response.text[:DETAIL_CHARS]}")
    elif response.status_code >= HTTP_CLIENT_ERROR:
        try:
            body = response.json()
            one_line = set(body) == {"error"} and "\n" not in body["error"]
        except ValueError:
            one_line = False
        if not one_line:
            outcome.flag("", f"{response.status_code} body {response.text[:DETAIL_CHARS]!r}")
    elif not complete_image(response.content):
        outcome.flag("partial", f"{response.status_code} with an incomplete image")


# ---------------------------------------------------------------------------------------------------- front-ends


def write_files(case: Case, folder: Path) -> set[Path]:
    """Create the case's files under `folder`; everything there afterwards."""
    for name, data in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return set(folder.rglob("*"))


def run_cli(case: Case, folder: Path) -> list[Outcome]:
    before = write_files(case, folder)
    run = run_main(["upscale", *(arg.format(dir=folder) for arg in case.args)])
    outcome = Outcome("cli", case.kinds[0])
    judge_run(outcome, run)
    judge_refusal(outcome, run)
    new = {path for path in folder.rglob("*") if path.is_file()} - before
    if bad := incomplete(new):
        outcome.flag("partial", f"left {bad}")
    if run.code != 0 and len(case.inputs) == 1 and new:
        outcome.flag("partial", f"left {sorted(path.name for path in new)} after failing")
    return [outcome]


def run_batch(case: Case, folder: Path) -> list[Outcome]:
    """One batch job: its defects (a traceback, a hang, leftovers) mark every item; then each item's own entry."""
    from enlarge.batch.runner import EXIT_SOME_FAILED

    write_files(case, folder)
    run = run_main(["batch", *(arg.format(dir=folder) for arg in case.args)], limit_s=HANG_S * len(case.inputs))
    job = Outcome("batch", "job")
    judge_run(job, run)
    out = folder / BATCH_OUTPUT
    hidden = out / STATE_DIR
    if left := sorted(path.name for path in (hidden / TMP_DIR).rglob("*")):
        job.flag("partial", f"left {left} in the temporary folder")
    visible = {path for path in out.rglob("*") if path.is_file() and hidden not in path.parents}
    try:
        report = json.loads(run.stdout)
    except ValueError:  # the job was refused as a whole (one error line), or it hung
        report = {state: [] for state in BATCH_STATES}
        judge_refusal(job, run)
        if run.code == 0 and not run.hang:
            job.flag("", "exit 0 without a report")
    if run.stdout and run.code != (EXIT_SOME_FAILED if report["failed"] else 0):
        job.flag("", f"exit {run.code} with {len(report['failed'])} failed item(s)")
    made = {Path(entry["output"]) for entry in report["done"]}
    if stray := sorted(path.name for path in visible - made):
        job.flag("partial", f"left {stray}, which the report does not name as done")
    entries = {entry["input"]: (state, entry) for state in BATCH_STATES for entry in report[state]}
    outcomes = []
    for kind, name in zip(case.kinds, case.inputs):
        outcome = dataclasses.replace(job, kind=kind)
        judge_item(outcome, entries.get(str(folder / name)), Path(name), listed=bool(run.stdout))
        outcomes.append(outcome)
    return outcomes


def judge_item(outcome: Outcome, entry: tuple[str, dict] | None, name: Path, listed: bool) -> None:
    """A batch item is done (a complete output of the reported size), or failed with a one-line, typed reason."""
    if entry is None:
        if listed and name.suffix.lower() in INPUT_EXTENSIONS:
            outcome.flag("", "an input the report does not name")
        return
    state, fields = entry
    output = Path(fields["output"])
    if state == "done":
        data = output.read_bytes() if output.is_file() else b""
        if not complete_image(data):
            outcome.flag("partial", f"{output.name} is not a complete image")
        elif Image.open(io.BytesIO(data)).size != tuple(fields["output_size"]):
            outcome.flag("partial", f"{output.name} is not {fields['output_size']}")
    elif state == "failed":
        if fields["reason"].startswith(BATCH_CRASH):  # an untyped exception in the worker, retried and re-raised
            outcome.flag("traceback", fields["reason"][:DETAIL_CHARS])
        elif "\n" in fields["reason"]:
            outcome.flag("", "a reason of several lines")
        if output.exists():
            outcome.flag("partial", f"{output.name} left by a failed item")
    else:
        outcome.flag("", f"skipped in a new output folder: {fields['reason']}")


def run_http(case: Case, client: Any, front: str) -> Outcome:
    """POST the case's file and form to /v1/upscale through `client` (a TestClient or an httpx.Client)."""
    name = case.inputs[0]
    files = [("file", (name, case.files[name], "application/octet-stream"))]
    form: dict[str, list[str]] = {}
    for key, value in case.form:
        form.setdefault(key, []).append(value)
    outcome = Outcome(front, case.kinds[0])
    try:
        with time_limit(HANG_S):
            response = client.post("/v1/upscale", files=files, data=form)
    except (Hang, httpx.TimeoutException):
        outcome.flag("hang", f"no answer in {HANG_S} s")
        return outcome
    except Exception:
        outcome.flag("traceback", traceback.format_exc().splitlines()[-1])
        return outcome
    judge_response(outcome, response)
    return outcome


@contextlib.contextmanager
def api_client() -> Iterator[Any]:
    from enlarge.serve import ServeConfig, create_app

    with warnings.catch_warnings():  # Starlette's notice that it prefers httpx2 to the installed httpx
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient
    with TestClient(create_app(ServeConfig(**SERVE_LIMITS)), raise_server_exceptions=False) as client:
        yield client


@dataclass
class Service:
    """A running `enlarge serve`: an HTTP client on it, its stderr as it arrives, and its latest case."""

    client: httpx.Client
    log: list[str]
    seen: int = 0
    last: Outcome | None = None

    def run(self, case: Case) -> Outcome:
        """The case over HTTP; a traceback or warning the server printed meanwhile marks it too."""
        self.last = outcome = run_http(case, self.client, "service")
        self.check_log()
        return outcome

    def check_log(self) -> None:
        """Judge what the server printed since the last check by the latest case."""
        end = len(self.log)
        if self.last is not None:
            judge_stderr(self.last, "".join(self.log[self.seen:end]), OURS_SERVER)
        self.seen = end


@contextlib.contextmanager
def service() -> Iterator[Service]:
    """One real `enlarge serve` of this checkout on a free localhost port, with the API's limits; stopped after."""
    source = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    flags = [item for key, value in SERVE_LIMITS.items() for item in (SERVE_FLAGS[key], str(value))]
    server = ServeProcess(flags, env={**os.environ, "PYTHONPATH": source}, cwd=REPO, start_timeout_s=SERVE_START_S)
    try:
        with httpx.Client(base_url=server.url, timeout=HANG_S + 1) as client:
            running = Service(client, server.log)
            yield running
    finally:
        server.stop(SERVE_STOP_S)
    running.check_log()  # what it printed while stopping


class Fronts:
    """Runs a case on its front-end; the API's app and the real service start on their first case."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._api: Any = None
        self._service: Service | None = None

    def run(self, case: Case, folder: Path) -> list[Outcome]:
        if case.front == "cli":
            return run_cli(case, folder)
        if case.front == "batch":
            return run_batch(case, folder)
        if case.front == "api":
            if self._api is None:
                self._api = self._stack.enter_context(api_client())
            return [run_http(case, self._api, "api")]
        if self._service is None:
            self._service = self._stack.enter_context(service())
        return [self._service.run(case)]


def fuzz(cases: int, seed: int, progress: Callable[[int], None] | None = None) -> list[Outcome]:
    """Run `cases` seeded cases through the CLI, the API, the service and batch jobs; the outcome of each."""
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="enlarge-fuzz-") as root, contextlib.ExitStack() as stack:
        fronts = Fronts(stack)
        for index, case in enumerate(plan(cases, seed)):
            folder = Path(root) / f"case{index}"
            folder.mkdir()
            start = time.perf_counter()
            done = fronts.run(case, folder)
            for outcome in done:
                outcome.seconds = (time.perf_counter() - start) / len(done)
                outcome.case = " ".join(case.args) if case.args else repr(case.form)
            outcomes += done
            if progress is not None:
                progress(len(outcomes))
    return outcomes


# ---------------------------------------------------------------------------------------------------- report


def table(outcomes: list[Outcome]) -> str:
    rows = [
        f"| front-end | cases | clean | tracebacks | stray stderr | partial outputs | 5xx | hangs (> {HANG_S} s) | "
        "seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for front in (*FRONTS, "all"):
        chosen = [o for o in outcomes if front in ("all", o.front)]
        rows.append(
            f"| {front} | {len(chosen)} | {sum(o.clean for o in chosen)} | {sum(o.traceback for o in chosen)} | "
            f"{sum(o.stray for o in chosen)} | {sum(o.partial for o in chosen)} | {sum(o.server_error for o in chosen)} | "
            f"{sum(o.hang for o in chosen)} | {sum(o.seconds for o in chosen):.0f} |"
        )
    kinds = Counter(o.kind for o in outcomes)
    rows += ["", "Inputs: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))]
    return "\n".join(rows)


def command_line(args: argparse.Namespace) -> str:
    """The command as run, with the thread setting and niceness it ran under."""
    prefix = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    if (niceness := os.nice(0)) > 0:
        prefix += f"nice -n {niceness} "
    return f"{prefix}PYTHONPATH=src python benchmarks/fuzz.py --cases {args.cases} --seed {args.seed} --write"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(REPO)}")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    outcomes = fuzz(args.cases, args.seed)
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    report = table(outcomes)
    bad = [o for o in outcomes if not o.clean]
    print(report)
    for outcome in bad:
        print(f"  not clean: {outcome.front} {outcome.kind}: {outcome.detail} [{outcome.case}]", file=sys.stderr)
    if args.write:
        RESULTS.write_text(
            "# Fuzzing malformed inputs through the CLI, the API, the service and batch jobs\n\n"
            f"`{command_line(args)}`\n\n"
            f"{cpu_summary()}; load average {load_before:.1f} at the start and {load_after:.1f} at the end "
            f"(1-minute); {args.cases} cases in {seconds:.0f} s.\n\n"
            f"{report}\n\n"
            "Front-ends: `cli` is `enlarge upscale` in-process; `api` the application through Starlette's TestClient; "
            "`service` one real `enlarge serve` process on localhost, over HTTP (its stderr, workers included, "
            f"is checked too); `batch` `enlarge batch` jobs of {BATCH_FILES[0]}–{BATCH_FILES[1]} inputs (one case "
            "each) with one worker process. `seconds` is the time spent in each front-end.\n\n"
            "Every case must be clean: success, or one `error:` line per failed input (CLI) or for a refused job "
            "(batch), a one-line typed reason per failed batch item, or a 4xx JSON body (API, service); "
            "tracebacks, stray stderr lines, partial outputs, 5xx and hangs must all be 0. A batch job may run "
            f"{HANG_S} s per input.\n"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
