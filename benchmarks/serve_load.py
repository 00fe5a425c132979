"""Loopback load on `enlarge serve`: latency percentiles, errors and the server's peak memory.

    python benchmarks/serve_load.py             # print the table
    python benchmarks/serve_load.py --write     # also write docs/results/serve.md

Starts the real server (`python -m enlarge serve`) on a free loopback port, sends a few warm-up requests, then
REQUESTS uploads, CONCURRENCY at a time, of small crops of examples/coffee.png enlarged ×SCALE with the bicubic
model. Only 200 and 429 (the full waiting line) are acceptable answers; anything else fails the run. The
server's peak RSS is the largest sum, over its process tree (server, forkserver, workers), of samples taken
every SAMPLE_S seconds. Timings taken while another heavy process runs are not comparable: the load average at
the start is recorded beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from machine_info import python_machine  # beside this script

import httpx
import psutil
from PIL import Image

from enlarge.serve.config import DEFAULT_QUEUE
from enlarge.serve.launch import ServeProcess

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "serve.md"
PHOTO = REPO / "examples" / "coffee.png"
REQUESTS = 100
CONCURRENCY = 8
CROP_SIZE = (64, 48)
CROPS = 10  # distinct inputs, cycled through
SCALE = 4
MODEL = "bicubic"
SAMPLE_S = 0.05
REQUEST_TIMEOUT_S = 120.0
ALLOWED = frozenset({200, 429})
PERCENTILES = (50, 90, 99)
MIB = 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    status: int
    seconds: float  # client-side, request sent to response read
    server_seconds: float | None  # X-Enlarge-Seconds: the worker's own time


def crops() -> list[bytes]:
    """CROPS small PNGs cut from the example photo along its diagonal."""
    out = []
    with Image.open(PHOTO) as photo:
        width, height = photo.size
        for i in range(CROPS):
            left = (width - CROP_SIZE[0]) * i // (CROPS - 1)
            top = (height - CROP_SIZE[1]) * i // (CROPS - 1)
            buffer = io.BytesIO()
            photo.crop((left, top, left + CROP_SIZE[0], top + CROP_SIZE[1])).save(buffer, "PNG")
            out.append(buffer.getvalue())
    return out


class PeakRss:
    """Samples the RSS of a process and all its descendants in a thread; `peak` is the largest sum seen."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for process in [self.root, *self.root.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:  # a worker replaced between listing and reading
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(SAMPLE_S)


async def one(client: httpx.AsyncClient, limit: asyncio.Semaphore, image: bytes) -> Outcome:
    async with limit:
        started = time.perf_counter()
        response = await client.post(
            "/v1/upscale", files={"file": ("crop.png", image, "image/png")},
            data={"scale": str(SCALE), "model": MODEL},
        )
        seconds = time.perf_counter() - started
    server = response.headers.get("x-enlarge-seconds")
    return Outcome(response.status_code, seconds, float(server) if server else None)


async def load(url: str, images: list[bytes], requests: int, concurrency: int) -> tuple[list[Outcome], float]:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one(client, limit, images[i % len(images)]) for i in range(requests)))
        return list(outcomes), time.perf_counter() - started


def percentiles(values: list[float]) -> dict[int, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {p: cuts[p - 1] for p in PERCENTILES}


def report(
    args: argparse.Namespace, workers: int, outcomes: list[Outcome], wall_s: float, peak_rss: int, load1: float
) -> str:
    ok = [o for o in outcomes if o.status == 200]
    counts = Counter(o.status for o in outcomes)
    command = "python benchmarks/serve_load.py" + "".join(f" {flag}" for flag in server_flags(args))
    rows = ["| | " + " | ".join(f"p{p}" for p in PERCENTILES) + " |", "|---" * (len(PERCENTILES) + 1) + "|"]
    for label, values in (
        ("latency seen by the client (s)", [o.seconds for o in ok]),
        ("worker time, X-Enlarge-Seconds (s)", [o.server_seconds for o in ok if o.server_seconds is not None]),
    ):
        if len(values) > 1:
            cuts = percentiles(values)
            rows.append(f"| {label} | " + " | ".join(f"{cuts[p]:.3f}" for p in PERCENTILES) + " |")
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(counts.items()))
    return "\n".join(
        [
            "# `enlarge serve` under loopback load",
            "",
            f"Command: `{command} --write` ({date.today().isoformat()}).",
            "",
            f"{args.requests} requests, {args.concurrency} at a time, each a {CROP_SIZE[0]}×{CROP_SIZE[1]} PNG crop "
            f"of `examples/coffee.png` enlarged ×{SCALE} with `{MODEL}` (PNG out); a warm-up of one request per "
            "worker first, not counted. Server: `python -m enlarge serve` with "
            f"{workers} worker processes and a waiting line of {DEFAULT_QUEUE if args.queue is None else args.queue}.",
            "",
            *rows,
            "",
            f"- answers: {statuses} (only 200 and 429 are acceptable)",
            f"- throughput: {len(ok) / wall_s:.1f} enlargements/s ({wall_s:.2f} s for all)",
            f"- server peak RSS, summed over its process tree (server, forkserver, workers): {peak_rss / MIB:.0f} MiB "
            "(pages the workers share with the forkserver, torch's among them, count once per process)",
            f"- machine: {python_machine()}; load average at the start {load1:.2f} (another process may have been "
            "using the cores: compare only runs taken under a similar load)",
            "",
        ]
    )


def server_flags(args: argparse.Namespace) -> list[str]:
    """The `enlarge serve` flags this run passes on (those left at the server's own defaults are omitted)."""
    return [f"--{name}={value}" for name, value in (("workers", args.workers), ("queue", args.queue))
            if value is not None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--workers", type=int, help="server worker processes (default: the server's own)")
    parser.add_argument("--queue", type=int, help="server waiting line (default: the server's own)")
    parser.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    args = parser.parse_args()
    images = crops()
    load1 = os.getloadavg()[0]
    with ServeProcess(server_flags(args), cwd=REPO) as server:
        url = server.url
        workers = httpx.get(f"{url}/healthz").json()["workers"]
        with PeakRss(server.process.pid) as rss:
            asyncio.run(load(url, images, workers, workers))
            outcomes, wall_s = asyncio.run(load(url, images, args.requests, args.concurrency))
    text = report(args, workers, outcomes, wall_s, rss.peak, load1)
    print(text)
    if args.write:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(text)
        print(f"wrote {RESULT.relative_to(REPO)}")
    bad = [o.status for o in outcomes if o.status not in ALLOWED]
    if bad:
        print(f"error: {len(bad)} answers other than 200/429: {Counter(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
