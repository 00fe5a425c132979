"""Seeded fuzzing of `enlarge upscale` and the HTTP API with malformed inputs: every case must end cleanly.

    PYTHONPATH=src python benchmarks/fuzz.py --cases 300 --seed 0            # print the table
    PYTHONPATH=src python benchmarks/fuzz.py --cases 300 --seed 0 --write    # also write docs/results/fuzz.md

Each case is a small image file, usually damaged (cut short, bytes flipped, emptied, a foreign format under an
image extension, a header announcing a huge image, an unsupported TIFF, an animation, corrupt EXIF), under an ordinary or a
hostile name, with size, tile and model arguments drawn from good and bad values (zero, negative, NaN, infinite,
not numbers, unknown and misspelt models, text files and truncated weights as models). It goes through the CLI
(`enlarge.cli.main.main`, in this process) or through the API (FastAPI's TestClient on `create_app`: the worker
pool, the decoder, the model and the encoder), chosen by the seed. What is counted:

- **traceback**: an exception other than the CLI's own exit escaped, a traceback reached stderr, or a warning
  escaped onto it; for the API, a 5xx or a body that is not one JSON error line;
- **partial output**: a file left behind that is not a complete image, or any new file after a failed case;
- **hang**: a case running past HANG_S seconds (stopped by an alarm).

A clean case either succeeds, or fails with exactly one `error:` line per failed input (CLI) or a 4xx JSON body.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from machine_info import cpu_summary

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results" / "fuzz.md"
HANG_S = 30  # issue 19: no case may run longer
MAX_SIDE = 24  # images stay tiny so a case takes milliseconds
API_SHARE = 0.4  # of the cases, how many go through the API
API_MAX_MP = 0.05  # the fuzzed server's input and output limits (megapixels)
API_TIMEOUT_S = 20
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
MODES = ("L", "LA", "RGB", "RGBA", "P", "1", "I;16")
HUGE_SIDE = 100_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCALES = ("2", "2.5", "0.5", "1", "3", "0", "-1", "nan", "inf", "1e308", "abc", "2x", "")
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
    """One fuzz case: the files to create, and either CLI arguments or an API form."""

    kind: str  # what was done to the input, for the table
    files: dict[str, bytes]
    args: list[str] = field(default_factory=list)  # CLI: {dir} is the case's folder
    form: list[tuple[str, str]] | None = None  # API: the form fields besides `file`


@dataclass
class Outcome:
    """What a case did."""

    front: str
    kind: str
    clean: bool
    traceback: bool = False
    partial: bool = False
    hang: bool = False
    detail: str = ""


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


def make_case(rng: random.Random) -> Case:
    kind, data, ext = damaged(rng)
    name = rng.choice(HOSTILE_NAMES) if rng.random() < 0.2 else f"input{ext}"
    if rng.random() < API_SHARE:
        form = [(key, api_value(rng, key)) for key in rng.sample(API_FIELDS, rng.randint(0, 3))]
        if rng.random() < 0.1:
            form.append(rng.choice([("scael", "2"), ("scale", "2"), ("file", "x")]))  # unknown or repeated
        return Case(kind, {name: data}, form=form)
    files = {name: data}
    args = [f"{{dir}}/{name}", *size_args(rng), *model_args(rng, files)]
    if (tile := rng.choice(TILES)) is not None:
        args += ["--tile", tile]
    if rng.random() < 0.15:  # a second input, and an output named like a file
        files["second.png"] = image_bytes(rng)[0]
        args += ["{dir}/second.png", "-o", "{dir}/out.png"]
    if rng.random() < 0.1:
        args += ["--max-output-mp", rng.choice(("0", "-1", "0.0001", "nan"))]
    return Case(kind, files, args=args)


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


# ---------------------------------------------------------------------------------------------------- running


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


def complete_image(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:  # anything Pillow cannot fully decode is a partial output
        return False


def run_cli(case: Case, folder: Path) -> Outcome:
    from enlarge.cli.main import main

    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    before = set(folder.iterdir())
    args = [arg.format(dir=folder) for arg in case.args]
    stdout, stderr = io.StringIO(), io.StringIO()
    outcome = Outcome("cli", case.kind, clean=True)
    code = 0
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(stderr):
        warnings.simplefilter("always")
        try:
            with time_limit(HANG_S):
                code = main(["upscale", *args])
        except SystemExit as exc:  # argparse refusing the arguments: a usage line and exit 2
            code = exc.code if isinstance(exc.code, int) else EXIT_ARGPARSE
        except Hang:
            outcome.hang, outcome.clean = True, False
        except Exception:
            outcome.traceback, outcome.clean = True, False
            outcome.detail = traceback.format_exc().splitlines()[-1]
    err = stderr.getvalue()
    if caught or "Traceback" in err:
        outcome.traceback, outcome.clean = True, False
        outcome.detail = outcome.detail or (str(caught[0].message) if caught else err.splitlines()[-1])
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    if code != 0 and not errors and "usage:" not in err and not outcome.hang:
        outcome.clean, outcome.detail = False, outcome.detail or f"exit {code} without an error line"
    if len(errors) > len(lines) or any("\n" in line for line in errors):
        outcome.clean = False
    new = set(folder.rglob("*")) - before - {p for p in folder.rglob("*") if p.is_dir()}
    if any(not complete_image(p) for p in new):
        outcome.partial, outcome.clean = True, False
        outcome.detail = outcome.detail or f"left {sorted(p.name for p in new)}"
    if code != 0 and len(case.files) == 1 and new:
        outcome.partial, outcome.clean = True, False
    return outcome


def run_api(case: Case, client: object) -> Outcome:
    name, data = next(iter(case.files.items()))
    files = [("file", (name, data, "application/octet-stream"))]
    form: dict[str, list[str]] = {}
    for key, value in case.form or []:
        form.setdefault(key, []).append(value)
    outcome = Outcome("api", case.kind, clean=True)
    try:
        with time_limit(HANG_S):
            response = client.post("/v1/upscale", files=files, data=form)  # type: ignore[attr-defined]
    except Hang:
        outcome.hang, outcome.clean = True, False
        return outcome
    except Exception:
        outcome.traceback, outcome.clean = True, False
        outcome.detail = traceback.format_exc().splitlines()[-1]
        return outcome
    if response.status_code >= 500:
        outcome.traceback, outcome.clean = True, False
        outcome.detail = f"{response.status_code}: {response.text[:120]}"
    elif response.status_code >= 400:
        try:
            body = response.json()
            one_line = set(body) == {"error"} and "\n" not in body["error"]
        except ValueError:
            one_line = False
        if not one_line:
            outcome.clean, outcome.detail = False, f"{response.status_code} body {response.text[:120]!r}"
    elif not response.content or not complete_image_bytes(response.content):
        outcome.partial, outcome.clean = True, False
    return outcome


def complete_image_bytes(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except Exception:  # an answer Pillow cannot decode is a partial output
        return False


@contextlib.contextmanager
def api_client() -> Iterator[object]:
    from enlarge.serve import ServeConfig, create_app

    with warnings.catch_warnings():  # Starlette's notice that it prefers httpx2 to the installed httpx
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient
    config = ServeConfig(workers=1, queue=4, max_upload_mb=1, max_input_mp=API_MAX_MP, max_output_mp=API_MAX_MP,
                         timeout_s=API_TIMEOUT_S)
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        yield client


def fuzz(cases: int, seed: int, progress: Callable[[int], None] | None = None) -> list[Outcome]:
    """Run `cases` seeded cases through the CLI and the API; the outcome of each."""
    rng = random.Random(seed)
    planned = [make_case(rng) for _ in range(cases)]
    outcomes = []
    root = Path(tempfile.mkdtemp(prefix="enlarge-fuzz-"))
    try:
        with api_client() as client:
            for index, case in enumerate(planned):
                if case.form is not None:
                    outcomes.append(run_api(case, client))
                else:
                    folder = root / f"case{index}"
                    folder.mkdir()
                    outcomes.append(run_cli(case, folder))
                if progress is not None:
                    progress(index + 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return outcomes


# ---------------------------------------------------------------------------------------------------- report


def table(outcomes: list[Outcome]) -> str:
    rows = ["| front-end | cases | clean | tracebacks | partial outputs | 5xx | hangs (> 30 s) |", "|---|---|---|---|---|---|---|"]
    for front in ("cli", "api", "all"):
        chosen = [o for o in outcomes if front in ("all", o.front)]
        tracebacks = sum(o.traceback for o in chosen if o.front == "cli")
        five = sum(o.traceback for o in chosen if o.front == "api")
        rows.append(
            f"| {front} | {len(chosen)} | {sum(o.clean for o in chosen)} | {tracebacks} | "
            f"{sum(o.partial for o in chosen)} | {five} | {sum(o.hang for o in chosen)} |"
        )
    kinds = Counter(o.kind for o in outcomes)
    rows += ["", "Inputs: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(REPO)}")
    args = parser.parse_args()
    start = time.perf_counter()
    outcomes = fuzz(args.cases, args.seed)
    seconds = time.perf_counter() - start
    load = os.getloadavg()[0]
    report = table(outcomes)
    bad = [o for o in outcomes if not o.clean]
    print(report)
    for outcome in bad:
        print(f"  not clean: {outcome.front} {outcome.kind}: {outcome.detail}", file=sys.stderr)
    if args.write:
        command = f"PYTHONPATH=src python benchmarks/fuzz.py --cases {args.cases} --seed {args.seed} --write"
        busy = " (measured on a busy machine)" if load >= 1 else ""
        RESULTS.write_text(
            f"# Fuzzing malformed inputs through the CLI and the API\n\n`{command}`\n\n"
            f"{cpu_summary()}; load average {load:.1f}{busy}; {args.cases} cases in {seconds:.0f} s.\n\n"
            f"{report}\n\nEvery case must be clean: success, or one `error:` line per failed input (CLI) or a 4xx "
            "JSON body (API); tracebacks, partial outputs, 5xx and hangs must all be 0.\n"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
