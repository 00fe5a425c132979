"""Inference speed of every model on this machine, against a plain LIIF-EDSR-baseline measured in the same run.

    python benchmarks/speed.py                 # print the table
    python benchmarks/speed.py --write         # also write docs/results/speed.md

Each case runs in its own process so its peak RSS is its own. Weights do not change speed, so models without
shipped weights run with random weights here (and only here). Timings taken while another heavy process runs are
not valid: the script warns (and `--strict` refuses) when the load average says the CPU is busy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "speed.md"
SCALES = (2, 4, 8)
SMALL = (256, 256)  # (W, H) every model runs on
LARGE = (960, 540)  # only the light models
REFERENCE = "liif-reference"
REFERENCE_SCALE = 4
REPEATS = 3
BUSY_LOAD = 0.5  # load average (per core) above which another process is likely competing
SEED = 0


@dataclass(frozen=True)
class Case:
    model: str
    scale: int
    size: tuple[int, int]
    repeats: int = REPEATS

    def label(self) -> str:
        return f"{self.model} ×{self.scale} {self.size[0]}×{self.size[1]}"


def light_models() -> list[str]:
    return ["lite", "bicubic"]


def cases() -> list[Case]:
    out = [Case("pillow-bicubic", s, size) for size in (SMALL, LARGE) for s in SCALES]
    out += [Case(m, s, size) for m in light_models() for size in (SMALL, LARGE) for s in SCALES]
    out += [Case("liif-edsr-baseline", s, SMALL, repeats=1) for s in SCALES]
    out.append(Case(REFERENCE, REFERENCE_SCALE, SMALL, repeats=1))
    return out


def machine() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")


def run_case(case: Case) -> dict:
    """Time one case in this process (called in a child process)."""
    import numpy as np
    import torch
    from PIL import Image

    torch.manual_seed(SEED)
    w, h = case.size
    out_size = (h * case.scale, w * case.scale)
    rng = np.random.default_rng(SEED)
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if case.model == "pillow-bicubic":
        image = Image.fromarray(pixels)

        def step() -> None:
            image.resize((out_size[1], out_size[0]), Image.BICUBIC)
    else:
        from enlarge.engine import render
        from enlarge.models.registry import SPECS, LoadedModel, available, build, create, describe

        name = "liif-edsr-baseline" if case.model == REFERENCE else case.model
        spec = SPECS[name]
        if available(spec):
            loaded = create(name)
        else:
            module = build(spec.arch, spec.config).eval()
            loaded = LoadedModel(module, describe(name, spec.arch, spec.config, module, has_weights=False))
        if case.model == REFERENCE:
            loaded.module.query_grid = None  # the straightforward point query, no fast path
        lr = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
        precision = loaded.descriptor.default_precision

        def step() -> None:
            render(loaded, lr, out_size, precision=precision)

    times = []
    for _ in range(case.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    megapixels = out_size[0] * out_size[1] / 1e6
    median = statistics.median(times)
    return {"label": case.label(), "model": case.model, "scale": case.scale, "size": list(case.size),
            "median_s": median, "mp_per_s": megapixels / median, "peak_rss_mb": rss_mb, "runs": case.repeats}


def busy() -> float:
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def table(rows: list[dict], reference: dict | None) -> str:
    lines = ["| model | scale | input | median s | MP/s out | peak RSS MB | speed-up vs reference |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = ""
        if reference and r["size"] == reference["size"] and r["scale"] == reference["scale"]:
            ratio = f"{reference['median_s'] / r['median_s']:.1f}×"
        lines.append(f"| {r['model']} | ×{r['scale']} | {r['size'][0]}×{r['size'][1]} | {r['median_s']:.3f} | "
                     f"{r['mp_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    parser.add_argument("--strict", action="store_true", help="refuse to run when the CPU is busy")
    parser.add_argument("--only", help="run only cases whose model name contains this text")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    if args.case:
        model, scale, w, h, repeats = args.case.split(",")
        print(json.dumps(run_case(Case(model, int(scale), (int(w), int(h)), int(repeats)))))
        return 0
    load = busy()
    warning = ""
    if load > BUSY_LOAD:
        warning = f"load average {load:.2f} per core: another process is using the CPU, timings are not valid"
        print(f"warning: {warning}", file=sys.stderr)
        if args.strict:
            return 1
    rows = []
    for case in cases():
        if args.only and args.only not in case.model:
            continue
        spec = f"{case.model},{case.scale},{case.size[0]},{case.size[1]},{case.repeats}"
        proc = subprocess.run([sys.executable, __file__, "--case", spec], capture_output=True, text=True, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{row['label']}: {row['median_s']:.3f} s", file=sys.stderr)
    reference = next((r for r in rows if r["model"] == REFERENCE), None)
    text = table(rows, reference)
    header = f"Machine: {machine()}\n"
    print(header + "\n" + text)
    if args.write:
        note = f"\n\n**Warning:** {warning}\n" if warning else "\n"
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(
            "# Speed\n\nProduced by `python benchmarks/speed.py --write`. Median wall time over "
            f"{REPEATS} runs (reference and LIIF-EDSR-baseline: one run); the reference is LIIF-EDSR-baseline with "
            "the straightforward point query. Random weights where none ship: weights do not change speed.\n\n"
            + header + note + "\n" + text + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
