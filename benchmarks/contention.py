"""Thread policy under contention: the same enlargement with the default policy, one thread, and every CPU spinning,
on an idle machine and with other busy processes, in one run; writes docs/results/contention.md.

    python benchmarks/contention.py                 # lite ×4 on a 256² input, 0 and 1 busy processes
    python benchmarks/contention.py --busy 0 1 2 --repeats 5

Each case runs `enlarge upscale` in a fresh process (the policy acts at process start), timed inside it from the
model's first call; the table gives each time and its ratio to one thread in the same row. "busy N" starts N
processes that spin on one core each for the whole row. Other processes using the CPU before the run are named,
so a table made on a machine that was already busy says so.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from machine_info import heavy_processes  # beside this script

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "contention.md"
LIBGOMP_DEFAULT_SPIN = "300000"  # what GNU OpenMP spins when nothing is set (about 3 ms)
POLICIES = {  # name → (extra environment, --threads)
    "default policy": ({}, None),
    "1 thread": ({}, 1),
    "all threads, libgomp's spin (before)": ({"GOMP_SPINCOUNT": LIBGOMP_DEFAULT_SPIN}, os.cpu_count() or 1),
}
CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from enlarge import threads
    threads.prepare()
    from enlarge.imageio import DecodedImage
    from enlarge.sizing import SizeRequest
    from enlarge.upscaler import Upscaler
    side, scale, repeats, requested = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    count = threads.choose_threads(None if requested == "auto" else int(requested))
    upscaler = Upscaler("lite", threads=count)
    image = DecodedImage(np.random.default_rng(0).random((side, side, 3), dtype=np.float32))
    plan = SizeRequest(scale=scale).plan((side, side))
    upscaler.upscale_image(image, plan)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        upscaler.upscale_image(image, plan)
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": min(times), "threads": count}))
""")
USER_THREAD_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "MKL_NUM_THREADS")


def spin() -> None:
    """A busy process: one core, all the time."""
    while True:
        pass


def run_case(env_extra: dict[str, str], threads: int | None, side: int, scale: float, repeats: int) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in USER_THREAD_VARS}
    env.update(env_extra, PYTHONPATH=str(REPO / "src"))
    args = [str(side), str(scale), str(repeats), "auto" if threads is None else str(threads)]
    out = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=256, help="input side in pixels")
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (the fastest is kept)")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="busy processes per row")
    parser.add_argument("--write", type=Path, default=RESULT, help="the markdown file to write")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    others = heavy_processes()  # the load average also remembers the last minute's benchmarks
    cores = os.cpu_count() or 1
    rows = []
    for busy in args.busy:
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(busy)]
        for process in spinners:
            process.start()
        time.sleep(0.5)
        try:
            results = {name: run_case(env, threads, args.side, args.scale, args.repeats)
                       for name, (env, threads) in POLICIES.items()}
        finally:
            for process in spinners:
                process.kill()
                process.join()
        one = results["1 thread"]["seconds"]
        cells = [f"{r['seconds']:.2f} s ({r['threads']} t, ×{r['seconds'] / one:.2f})" for r in results.values()]
        rows.append(f"| {busy} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    busy_note = (f"an idle machine (load {load:.2f} on {cores} cores, no other process using the CPU)" if not others
                 else f"a **busy machine** ({'; '.join(others)} before the run)")
    lines = [
        "# Thread policy under contention",
        "",
        f"`lite` ×{args.scale:g} on a {args.side}² input, fastest of {args.repeats}, each case a fresh process; "
        f"measured on {busy_note}. Ratios are to one thread in the same row (lower is faster); t = threads used.",
        "",
        "| busy processes | " + " | ".join(POLICIES) + " |",
        "|---|" + "---|" * len(POLICIES),
        *rows,
        "",
        f"Made by `python benchmarks/contention.py --side {args.side} --scale {args.scale:g} --repeats {args.repeats} "
        f"--busy {' '.join(map(str, args.busy))}`.",
        "",
    ]
    args.write.write_text("\n".join(lines))
    print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
