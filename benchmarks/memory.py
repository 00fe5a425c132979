"""Peak memory of a large enlargement: a 4000×3000 photo-sized input at ×2 with the default model.

    python benchmarks/memory.py [--model NAME] [--width 4000 --height 3000 --scale 2] [--write]

Runs the whole file-to-file path (decode, enlarge tile by tile, encode, atomic write) in a child process and
reports its peak RSS and wall time; `--write` adds the row to docs/results/memory.md (replacing an earlier row of
the same model, input and scale). A registered model without shipped weights (`liif-rdn`) runs with random
weights here, and only here: weights do not change memory or time.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import cpu_summary  # beside this script

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "memory.md"
SEED = 0
MB = 1024  # ru_maxrss is in KiB on Linux
INTRO = (
    "# Memory\n\nProduced by `python benchmarks/memory.py --write [--model M --width W --height H --scale S]`, a "
    "row per run (the defaults: lite, 4000×3000, ×2): the whole file-to-file path in one process, tiles chosen "
    "automatically. The seconds are only a rough figure (see the speed section); the peak RSS is what the run needed. "
    "A registered model without shipped weights (LIIF-RDN) runs with random weights: weights do not change memory."
)
HEADER = ("| model | input | scale | output | seconds | peak RSS MB | machine | options |\n"
          "|---|---|---|---|---|---|---|---|")


def child(model: str | None, width: int, height: int, scale: float) -> dict:
    """Make a noisy test photo, enlarge it file to file, return timing and peak RSS of this process."""
    import numpy as np
    from PIL import Image

    from enlarge.sizing import SizeRequest
    from enlarge.upscaler import Upscaler

    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.png", Path(tmp) / "out.png"
        base = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        Image.fromarray(base).resize((width, height), Image.BICUBIC).save(src)
        upscaler = Upscaler(benchmark_model(model) if model else None)
        start = time.perf_counter()
        result = upscaler.enlarge_file(src, dst, SizeRequest(scale=scale))
        seconds = time.perf_counter() - start
    return {"model": result.model, "input": f"{width}×{height}", "output": "×".join(map(str, result.output_size)),
            "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MB}


def benchmark_model(name: str) -> object:
    """The model `name`: its shipped weights, or random weights where a registered spec ships none."""
    from enlarge.models.registry import SPECS, available, create

    return create(name, pretrained=available(SPECS[name])) if name in SPECS else name


def merged_table(old: str, line: str, key: str) -> str:
    """The table of `old` (a memory.md text) with `line` replacing any row that starts with `key`."""
    rows = [r for r in old.splitlines() if r.startswith("| ") and not r.startswith(("| model", key))]
    return "\n".join([HEADER, *rows, line])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or path (default: the default model)")
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.width, args.height, args.scale)))
        return 0
    cmd = [sys.executable, __file__, "--child", "--width", str(args.width), "--height", str(args.height),
           "--scale", str(args.scale)] + (["--model", args.model] if args.model else [])
    row = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    line = (f"| {row['model']} | {row['input']} | ×{args.scale:g} | {row['output']} | {row['seconds']:.1f} | "
            f"{row['peak_rss_mb']:.0f} | {cpu_summary()} | `{shlex.join(sys.argv[1:]) or '(defaults)'}` |")
    print(HEADER + "\n" + line)
    if args.write:
        key = f"| {row['model']} | {row['input']} | ×{args.scale:g} |"
        table = merged_table(RESULT.read_text() if RESULT.exists() else "", line, key)
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(INTRO + "\n\n" + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
