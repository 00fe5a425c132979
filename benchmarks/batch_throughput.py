"""Batch throughput on this machine: images per minute of `enlarge batch` with the local and the Ray engine.

    python benchmarks/batch_throughput.py            # print the table
    python benchmarks/batch_throughput.py --write    # also write docs/results/batch.md

IMAGES photographs of 256×256 (crops and mirror images of the example pictures) are enlarged ×2 by the same job on
each engine, with automatic workers at one thread each. Each engine runs the job on WARMUP_IMAGES and on all IMAGES,
into fresh output folders, REPEATS times (medians are reported). The total includes start-up (worker processes or
actors, each loading the model); the steady rate, (IMAGES − WARMUP_IMAGES) / (t_all − t_warmup), leaves it out.
The local Ray instance is started once before the Ray runs (its start is reported apart), as a cluster would be.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from machine_info import python_machine  # beside this script

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "batch.md"
EXAMPLES = REPO / "examples"
SOURCES = ("astronaut.png", "coffee.png", "chelsea.png")
IMAGES = 40
WARMUP_IMAGES = 4
REPEATS = 3  # the machine may be shared: medians of three are steadier than one run
SIDE = 256
SCALE = 2
CROP_STEP = 37  # pixels between successive crops of one source picture
DEFAULT_MODEL = "bicubic"
BUSY_LOAD = 0.5  # load average per core above which another process is competing


@dataclass(frozen=True)
class Row:
    engine: str
    workers: int
    threads: int
    images: int
    seconds: float
    warmup_seconds: float
    fastest: float  # the spread of the full runs' times
    slowest: float

    @property
    def per_minute(self) -> float:
        return self.images / self.seconds * 60

    @property
    def steady_per_minute(self) -> float:
        return (self.images - WARMUP_IMAGES) / (self.seconds - self.warmup_seconds) * 60

    @property
    def startup(self) -> float:
        """Seconds not explained by the steady rate: spawning workers and loading the model."""
        return self.seconds - self.images / self.steady_per_minute * 60


def make_images(folder: Path, count: int) -> None:
    """`count` 256×256 PNG crops (every other one mirrored) of the example pictures."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True)
    pictures = [Image.open(EXAMPLES / name).convert("RGB") for name in SOURCES]
    for index in range(count):
        picture = pictures[index % len(pictures)]
        step = index // len(pictures) * CROP_STEP
        left, top = step % (picture.width - SIDE + 1), step % (picture.height - SIDE + 1)
        crop = picture.crop((left, top, left + SIDE, top + SIDE))
        (ImageOps.mirror(crop) if index % 2 else crop).save(folder / f"photo{index:02d}.png")


def timed_job(inputs: Path, output: Path, engine: str, model: str) -> tuple[float, int, int]:
    """Run one job; (seconds, workers, threads)."""
    from enlarge.batch.runner import run_job
    from enlarge.batch.spec import load_job

    job = load_job(None, {
        "input": {"folder": str(inputs)},
        "model": {"name": model, "scale": SCALE},
        "output": {"folder": str(output)},
        "run": {"engine": engine},
    })
    start = time.perf_counter()
    report = run_job(job)
    seconds = time.perf_counter() - start
    if report.failed or report.skipped:
        raise SystemExit(f"{engine}: {len(report.failed)} failed, {len(report.skipped)} skipped; expected all done")
    return seconds, report.workers, job.run.threads


def measure(work: Path, engine: str, model: str) -> Row:
    """Median times over REPEATS pairs of runs, each into fresh output folders."""
    warmups, totals = [], []
    for repeat in range(REPEATS):
        warmup, _, _ = timed_job(work / "warmup", work / f"out-{engine}-{repeat}-warmup", engine, model)
        seconds, workers, threads = timed_job(work / "all", work / f"out-{engine}-{repeat}", engine, model)
        warmups.append(warmup)
        totals.append(seconds)
    return Row(engine, workers, threads, IMAGES, statistics.median(totals), statistics.median(warmups),
               min(totals), max(totals))


def load_note(before: float, after: float, note: str | None) -> str:
    """Whether other work competed for the CPU, from the load average around the measurement (and `note`)."""
    cores = os.cpu_count() or 1
    loads = f"load average {before:.1f} before and {after:.1f} after, on {cores} cores"
    said = f" {note}." if note else ""
    if max(before, after) / cores > BUSY_LOAD:
        return (f"**The CPU was shared** with other heavy work ({loads}).{said} These numbers are lower and noisier "
                "than on an idle machine, and a difference between the engines within the spread of the times is "
                "noise.")
    return f"The machine was otherwise idle ({loads}).{said}"


def table(rows: list[Row]) -> str:
    header = ("| engine | workers × threads | images | total s (fastest–slowest) | images/min (total) | start-up s "
              "| images/min (steady) |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    lines += [
        f"| {r.engine} | {r.workers} × {r.threads} | {r.images} | {r.seconds:.1f} ({r.fastest:.1f}–{r.slowest:.1f}) "
        f"| {r.per_minute:.0f} | "
        f"{r.startup:.1f} | {r.steady_per_minute:.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name or weights file (default %(default)s)")
    parser.add_argument("--note", help="what else ran on the machine, for the written results")
    args = parser.parse_args()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        make_images(work / "all", IMAGES)
        make_images(work / "warmup", WARMUP_IMAGES)
        rows.append(measure(work, "local", args.model))
        try:
            import ray
        except ImportError:
            print("ray is not installed: the ray engine is left out (pip install 'enlarge[ray]')", file=sys.stderr)
            ray_start = None
        else:
            start = time.perf_counter()
            ray.init(include_dashboard=False)
            ray_start = time.perf_counter() - start
            try:
                rows.append(measure(work, "ray", args.model))
            finally:
                ray.shutdown()
    load_after = os.getloadavg()[0]
    text = table(rows)
    print(text)
    if args.write:
        ray_note = f" Starting the local Ray instance took {ray_start:.1f} s more." if ray_start is not None else ""
        command = shlex.join(["python", "benchmarks/batch_throughput.py", *sys.argv[1:]])
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(
            f"# Batch throughput\n\nProduced by `{command}` on {python_machine()}.\n\n"
            f"{IMAGES} photographs of {SIDE}×{SIDE} (crops of the example pictures) enlarged ×{SCALE} to "
            f"{SIDE * SCALE}×{SIDE * SCALE} PNG with the `{args.model}` model by `enlarge batch` (automatic workers, "
            f"one thread each, outputs written by the driver). *Total* counts everything from the call to the "
            f"report, start-up included; *steady* leaves start-up out: it is the rate between a {WARMUP_IMAGES}-image "
            f"run and the {IMAGES}-image run; times are medians of {REPEATS} runs.{ray_note}\n\n"
            f"{text}\n\n"
            f"{load_note(load_before, load_after, args.note)}\n"
        )
        print(f"wrote {RESULT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
