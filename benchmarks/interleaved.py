"""Variants of the same work timed side by side: source revisions, backends, precisions, ONNX bands, interleaved.

    python benchmarks/interleaved.py --variant main:torch:bf16 --variant .:torch:bf16 --scales 2,4
    python benchmarks/interleaved.py --variant .:torch:fp32 --variant .:onnx:fp32 --variant .:onnx:fp32:16384
    python benchmarks/interleaved.py ... --part decoder --repeats 21 --size 256x256 --model lite
    python benchmarks/interleaved.py ... --markdown docs/results/onnx-speed.md   # also write the table, with its command

A variant is REV:BACKEND:PRECISION[:BAND]: REV a git revision (its `src/` is extracted to a temporary folder) or
`.` for this working tree; BACKEND `torch` or `onnx` (the model exported and run by onnxruntime, always fp32);
BAND the ONNX grid graph's pixels per call (default: the export's own). Each variant lives in its own process for
the whole run (one thread unless --threads), and the parent asks them for one timed run at a time, in rotating
order, so a load that comes and goes on a shared machine falls on every variant alike. The table gives each
variant's median and the median of its per-round ratio to the first variant (runs of one round are adjacent in
time), which is what to read on a busy machine; the load average per core is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from io import BytesIO
from pathlib import Path

from machine_info import cpu_summary, heavy_processes  # beside this script

REPO = Path(__file__).resolve().parents[1]
WORKING_TREE = "."
TORCH, ONNX = "torch", "onnx"
PARTS = ("render", "decoder")  # the whole engine (encoder + decoder) or the grid decoder alone
REPEATS = 15
SEED = 0
READY = "ready"


@dataclass(frozen=True)
class Variant:
    rev: str
    backend: str
    precision: str
    band: int | None = None

    @classmethod
    def parse(cls, text: str) -> Variant:
        rev, backend, precision, *band = text.split(":")
        if backend not in (TORCH, ONNX):
            raise SystemExit(f"unknown backend {backend!r} in {text!r}: use {TORCH} or {ONNX}")
        return cls(rev, backend, precision, int(band[0]) if band else None)

    def label(self) -> str:
        return ":".join([self.rev, self.backend, self.precision] + ([str(self.band)] if self.band else []))


def source_tree(rev: str, scratch: Path) -> Path:
    """The `src` folder of `rev` (this checkout's for `.`), extracted under `scratch`."""
    if rev == WORKING_TREE:
        return REPO / "src"
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True).stdout
    target = scratch / rev.replace("/", "_")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target / "src"


def child(variant: Variant, model: str, size: tuple[int, int], part: str, threads: int) -> None:
    """Serve timed runs: read a scale per line from stdin, answer the seconds of one run (after one warm-up)."""
    import torch

    from enlarge.coords import axis_coords
    from enlarge.engine import render
    from enlarge.engine.precision import precision_context
    from enlarge.engine.tiling import channels_last_copy
    from enlarge.models.registry import load_model

    torch.set_num_threads(threads)
    loaded = load_model(model)
    precision = variant.precision
    if variant.backend == ONNX:
        from enlarge.export.onnx import load_onnx

        loaded, precision = load_onnx(loaded, threads), "fp32"
        if variant.band is not None:
            loaded.module.grid_band = variant.band
    lr = torch.rand(1, 3, size[1], size[0], generator=torch.Generator().manual_seed(SEED))
    module = loaded.module
    with torch.inference_mode(), precision_context(precision, lr.device):
        feats = module.encode(channels_last_copy(lr))
    def decode(ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> None:
        with torch.inference_mode(), precision_context(precision, lr.device):
            module.query_grid(feats, ys, xs, cell)

    warm: set[float] = set()
    print(READY, flush=True)
    for line in sys.stdin:
        scale = float(line)
        out_hw = (round(size[1] * scale), round(size[0] * scale))
        if part == "render":
            step = partial(render, loaded, lr, out_hw, precision=precision)
        else:
            step = partial(decode, axis_coords(out_hw[0]), axis_coords(out_hw[1]),
                           torch.tensor([2.0 / out_hw[0], 2.0 / out_hw[1]]))
        if scale not in warm:
            step()
            warm.add(scale)
        start = time.perf_counter()
        step()
        print(f"{time.perf_counter() - start:.6f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], help="REV:BACKEND:PRECISION[:BAND], repeatable")
    parser.add_argument("--model", default="lite")
    parser.add_argument("--size", default="256x256", help="input W×H")
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--part", choices=PARTS, default="render")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="rounds (one run of every variant each)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", type=Path, help="also write the table, headed by the command that made it")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: serve one variant's runs
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        child(Variant.parse(args.child), args.model, (w, h), args.part, args.threads)
        return 0
    variants = [Variant.parse(v) for v in args.variant]
    if not variants:
        parser.error("give at least one --variant")
    scales = [float(s) for s in args.scales.split(",")]
    times: dict[tuple[int, float], list[float]] = {(i, s): [] for i in range(len(variants)) for s in scales}
    loads: list[float] = []
    competitors: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="enlarge-interleaved-") as scratch:
        procs = []
        for variant in variants:
            env = {**os.environ, "PYTHONPATH": str(source_tree(variant.rev, Path(scratch))),
                   "OMP_NUM_THREADS": str(args.threads)}
            command = [sys.executable, __file__, "--child", variant.label(), "--model", args.model, "--size",
                       args.size, "--part", args.part, "--threads", str(args.threads)]
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            if proc.stdout.readline().strip() != READY:
                raise SystemExit(f"variant {variant.label()} did not start")
            procs.append(proc)
        for round_ in range(args.repeats):
            for scale in scales:
                for k in range(len(procs)):
                    i = (k + round_) % len(procs)  # rotate who goes first
                    procs[i].stdin.write(f"{scale}\n")
                    procs[i].stdin.flush()
                    times[(i, scale)].append(float(procs[i].stdout.readline()))
            loads.append(os.getloadavg()[0] / (os.cpu_count() or 1))
            # the load average counts the variants' own threads, so competition is judged by the CPU use of
            # other processes, sampled while every variant waits for its next scale
            competitors.update(heavy_processes())
            print(f"round {round_ + 1}/{args.repeats}", file=sys.stderr, flush=True)
        for proc in procs:
            proc.stdin.close()
            proc.wait()
    busy = f" (busy machine: {'; '.join(sorted(competitors))})" if competitors else ""
    load = f"{min(loads):.2f}–{max(loads):.2f}{busy}"
    lines = [f"Machine: {cpu_summary()}, {args.threads} thread(s) per variant; load average per core during the run {load}",
             "",
             f"`{args.model}`, {args.part}, {w}×{h} input, {args.repeats} interleaved rounds", "",
             "| variant | scale | median s | s/MP out | spread (IQR/median) | ratio to first (median of rounds) |",
             "|---|---:|---:|---:|---:|---:|"]
    for scale in scales:
        megapixels = round(h * scale) * round(w * scale) / 1e6
        for i, variant in enumerate(variants):
            t = times[(i, scale)]
            q = statistics.quantiles(t, n=4) if len(t) > 1 else [t[0]] * 3
            ratio = statistics.median(a / b for a, b in zip(t, times[(0, scale)]))
            lines.append(f"| {variant.label()} | ×{scale:g} | {statistics.median(t):.3f} | "
                         f"{statistics.median(t) / megapixels:.3f} | {(q[2] - q[0]) / q[1]:.0%} | {ratio:.2f}× |")
    print("\n".join(lines))
    if args.markdown:
        command = " ".join(["python", "benchmarks/interleaved.py", *sys.argv[1:]])
        header = [f"# {args.model}: {' vs '.join(v.label() for v in variants)}", "", f"Produced by `{command}`.", ""]
        args.markdown.write_text("\n".join(header + lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
