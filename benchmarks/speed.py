"""Inference speed of every model on this machine, against a plain LIIF-EDSR-baseline measured in the same run.

    python benchmarks/speed.py                       # print the table
    python benchmarks/speed.py --write               # also write docs/results/speed.md
    python benchmarks/speed.py --only lite --scales 4 --sizes 256x256   # a subset

Rows: lite and bicubic through our engine, Pillow's bicubic, LIIF-EDSR-baseline and LIIF-RDN through our engine
(the exact grid fast path, fp32 and bf16), at ×2/×4/×8 on 256×256 and (the light ones) 960×540, lite also at
×1.5/×2.5/×3.75 (periodic: the phase-dense decoder) and ×2.37 (not) on 256×256; lite's ONNX export
run by onnxruntime through the same engine (precision `onnx`, fp32, its grid graph; where onnxruntime is
installed), with its time over PyTorch fp32's and bf16's below the table; and the reference, LIIF-EDSR-baseline
with the straightforward point query (256×256 ×4, one run). bf16 rows only where the CPU runs bf16 natively. The
speed-up column is output throughput (MP/s) over the reference's, so rows at every scale compare.

Each case runs in its own process (threads set once, at its start) so its peak RSS is its own. Weights do not
change speed, so models without shipped weights run with random weights here (and only here). Timings taken
while another heavy process runs are not valid: the script names such processes and warns, `--strict` refuses.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from machine_info import heavy_processes, torch_machine  # beside this script

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "speed.md"
SCALES = (2, 4, 8)
# lite only, 256×256: non-integer scales, periodic (×1.5, ×2.5, ×3.75: the phase-dense decoder) and not (×2.37)
FRACTIONAL_SCALES = (1.5, 2.5, 3.75, 2.37)
SMALL = (256, 256)  # (W, H) every model runs on
LARGE = (960, 540)  # only the light models
LIIF = "liif-edsr-baseline"
RDN = "liif-rdn"
REFERENCE = "liif-reference"
REFERENCE_SCALE = 4
PILLOW = "pillow-bicubic"
ONNX = "onnx"  # the precision label of the ONNX rows: the model exported, run by onnxruntime in fp32
ONNX_MODEL = "lite"
REPEATS = 3
WARMUP = 1  # untimed runs before the timed ones (first-call allocations, oneDNN kernel selection)
BUSY_LOAD = 0.5  # load average per core above which another process is likely competing
SEED = 0
KIB_PER_MB = 1024  # ru_maxrss is in KiB on Linux


@dataclass(frozen=True)
class Case:
    model: str
    scale: float
    size: tuple[int, int]
    precision: str = "fp32"
    repeats: int = REPEATS

    def label(self) -> str:
        return f"{self.model} {self.precision} ×{self.scale} {self.size[0]}×{self.size[1]}"

    def spec(self) -> str:
        return f"{self.model},{self.scale},{self.size[0]},{self.size[1]},{self.precision},{self.repeats}"

    @classmethod
    def parse(cls, text: str) -> Case:
        model, scale, w, h, precision, repeats = text.split(",")
        return cls(model, float(scale), (int(w), int(h)), precision, int(repeats))

    def out_size(self) -> tuple[int, int]:
        """(H, W) of the output."""
        return round(self.size[1] * self.scale), round(self.size[0] * self.scale)


def cases(bf16: bool, onnx: bool = False) -> list[Case]:
    """Every row of the table; bf16 rows only where the CPU has native bf16, ONNX ones where onnxruntime is."""
    precisions = ("fp32", "bf16") if bf16 else ("fp32",)
    out = [Case(PILLOW, s, size, "uint8") for size in (SMALL, LARGE) for s in SCALES]  # Pillow resizes 8-bit
    out += [Case("bicubic", s, size) for size in (SMALL, LARGE) for s in SCALES]
    out += [Case("lite", s, size, p) for p in precisions for size in (SMALL, LARGE) for s in SCALES]
    out += [Case("lite", s, SMALL, p) for p in precisions for s in FRACTIONAL_SCALES]
    if onnx:  # right after lite's PyTorch rows
        out += [Case(ONNX_MODEL, s, size, ONNX) for size in (SMALL, LARGE) for s in SCALES]
    out += [Case(m, s, SMALL, p, repeats=1) for m in (LIIF, RDN) for p in precisions for s in SCALES]
    out.append(Case(REFERENCE, REFERENCE_SCALE, SMALL, repeats=1))
    return out


def run_case(case: Case, threads: int) -> dict:
    """Time one case in this process (called in a child process)."""
    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    w, h = case.size
    out_size = case.out_size()
    pixels = np.random.default_rng(SEED).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if case.model == PILLOW:
        image = Image.fromarray(pixels)

        def step() -> None:
            image.resize((out_size[1], out_size[0]), Image.BICUBIC)
    else:
        from enlarge.engine import render
        from enlarge.models.registry import SPECS, available, create

        name = LIIF if case.model == REFERENCE else case.model
        loaded = create(name, pretrained=available(SPECS[name]))
        if case.model == REFERENCE:
            loaded.grid = None  # the straightforward point query, no fast path
        precision = case.precision
        if precision == ONNX:
            from enlarge.export.onnx import load_onnx

            loaded, precision = load_onnx(loaded, threads), "fp32"  # exported (and self-checked) before timing
        lr = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255

        def step() -> None:
            render(loaded, lr, out_size, precision=precision)

    for _ in range(WARMUP if case.repeats > 1 else 0):
        step()
    times = []
    for _ in range(case.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    megapixels = out_size[0] * out_size[1] / 1e6
    return {"label": case.label(), "model": case.model, "precision": case.precision, "scale": case.scale,
            "size": list(case.size), "median_s": median, "mp_per_s": megapixels / median,
            "spread": (max(times) - min(times)) / median, "load": os.getloadavg()[0] / (os.cpu_count() or 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MB, "runs": case.repeats}


def busy_warning() -> str:
    """Why timings taken now would not be valid, or "" when the machine looks idle."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    heavy = heavy_processes()
    if heavy:
        return f"other processes are using the CPU: {'; '.join(heavy)} (load {load:.2f} per core)"
    if load > BUSY_LOAD:
        return f"load average {load:.2f} per core: another process is likely using the CPU"
    return ""


def table(rows: list[dict], reference: dict | None) -> str:
    """The results; `× Pillow` is the row's seconds per output MP over Pillow bicubic's at the same scale and input
    in this run, and a row after which another process was using the CPU is marked `busy`."""
    pillow = {(r["scale"], tuple(r["size"])): r for r in rows if r["model"] == PILLOW}
    lines = [("| model | precision | scale | input | median s | spread | s/MP out | MP/s out | peak RSS MB | "
              "× Pillow time | speed-up vs reference | load |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['mp_per_s'] / reference['mp_per_s']:.3g}×" if reference else ""
        base = pillow.get((r["scale"], tuple(r["size"])))
        to_pillow = f"{base['mp_per_s'] / r['mp_per_s']:.3g}×" if base else ""
        load = f"{r['load']:.2f}" + (" busy" if r.get("others") else "")
        lines.append(f"| {r['model']} | {r['precision']} | ×{r['scale']:g} | {r['size'][0]}×{r['size'][1]} | "
                     f"{r['median_s']:.3f} | {r['spread']:.0%} | {1 / r['mp_per_s']:.3f} | {r['mp_per_s']:.3g} | "
                     f"{r['peak_rss_mb']:.0f} | {to_pillow} | {ratio} | {load} |")
    return "\n".join(lines)


def onnx_ratios(rows: list[dict]) -> list[str]:
    """One line per scale and input with an ONNX row: its median time over PyTorch fp32's and bf16's."""
    by_key = {(r["model"], r["precision"], r["scale"], tuple(r["size"])): r for r in rows}
    lines = []
    for r in rows:
        if r["precision"] != ONNX:
            continue
        key = (r["scale"], tuple(r["size"]))
        ratios = [f"{r['median_s'] / torch_row['median_s']:.2f}× {p}" for p in ("fp32", "bf16")
                  if (torch_row := by_key.get((r["model"], p, *key)))]
        if ratios:
            lines.append(f"- {r['model']} ×{r['scale']:g} {r['size'][0]}×{r['size'][1]}: ONNX time / PyTorch time = "
                         + ", ".join(ratios))
    return lines


def selected(case: Case, args: argparse.Namespace) -> bool:
    """Whether `case` passes the --only / --scales / --sizes filters."""
    if args.only and args.only not in case.model:
        return False
    if args.scales and case.scale not in args.scales:
        return False
    return not args.sizes or case.size in args.sizes


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """`256x256,960x540` → [(256, 256), (960, 540)], each (W, H)."""
    sizes = []
    for item in text.split(","):
        w, h = item.split("x")
        sizes.append((int(w), int(h)))
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    parser.add_argument("--strict", action="store_true", help="refuse to run when another process uses the CPU")
    parser.add_argument("--only", help="run only cases whose model name contains this text")
    parser.add_argument("--scales", type=lambda t: [float(s) for s in t.split(",")], help="e.g. 4 or 2,2.5")
    parser.add_argument("--sizes", type=parse_sizes, help="e.g. 256x256 or 256x256,960x540")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads per case (default: all)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(Case.parse(args.case), args.threads)))
        return 0
    warning = busy_warning()
    if warning:
        print(f"warning: {warning}; timings are not valid", file=sys.stderr)
        if args.strict:
            print("refusing to run (--strict)", file=sys.stderr)
            return 1
    from enlarge.engine.precision import bf16_supported

    rows = []
    for case in cases(bf16_supported(), importlib.util.find_spec("onnxruntime") is not None):
        if not selected(case, args):
            continue
        command = [sys.executable, __file__, "--case", case.spec(), "--threads", str(args.threads)]
        proc = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        # the load average counts this benchmark's own threads, so competition is judged by the other processes'
        # CPU use, sampled right after the case (a competitor that ran through the case is still running)
        row["others"] = heavy_processes()
        rows.append(row)
        print(f"{row['label']}: {row['median_s']:.3f} s", file=sys.stderr)
    reference = next((r for r in rows if r["model"] == REFERENCE), None)
    text = table(rows, reference)
    ratios = onnx_ratios(rows)
    if ratios:
        text += "\n\n" + "\n".join(ratios)
    header = f"Machine: {torch_machine(args.threads)}\n"
    print(header + ("\n**Warning:** " + warning + "\n" if warning else "") + "\n" + text)
    if args.write:
        note = f"\n**Warning:** {warning}; timings are not valid.\n" if warning else ""
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(
            "# Speed\n\nProduced by `python benchmarks/speed.py --write`. Median wall time over "
            f"{REPEATS} runs after {WARMUP} warm-up (LIIF-EDSR-baseline and the reference: one run), spread = "
            "(max − min)/median; the reference is LIIF-EDSR-baseline with the straightforward point query, and the "
            "speed-up is output throughput over the reference's; `× Pillow time` is seconds per output MP over "
            "Pillow bicubic's at the same scale and input, in the same run; `load` is the load average per core "
            "when the case ended, its own threads included (`busy`: another process used more than half a core "
            "right after the case). Random weights where none ship: weights do not change speed. Precision `onnx`: the "
            "model exported to ONNX and run by onnxruntime (fp32) through the same engine, export not timed.\n\n"
            + header + note + "\n" + text + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
