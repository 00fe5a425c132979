"""Validation curves of training runs from their logs: what each run gained, and at what rate.

    python scripts/training_report.py checkpoints/lite-anneal checkpoints/lite-real checkpoints/detail [--write]

Reads each run folder's `log.jsonl` (validation records, step rates) and its record (`run.json`, or `last.pt`:
config, training time), and prints, per run, validation Y-PSNR at each validated step with the hours spent, and the
gain per training hour against the run's starting point (its `init_from` weights, validated in the same way, or the
score a retired run's record keeps). With `--write` the table goes to docs/results/training-runs.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from enlarge.training.checkpoint import LOG, load_record
from enlarge.training.config import config_from_dict
from enlarge.training.validation_set import init_from_score

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "training-runs.md"
SECONDS_PER_HOUR = 3600.0


def report(run: Path) -> str:
    record = load_record(run)
    config = config_from_dict(record.config, source=str(run))
    records = [json.loads(line) for line in (run / LOG).read_text().splitlines() if line.strip()]
    rates = [r["steps_per_s"] for r in records if "steps_per_s" in r]
    mean_rate = sum(rates) / len(rates) if rates else float("nan")
    vals = [r for r in records if "val_psnr" in r]
    start = record.start_psnr if record.start_psnr is not None else init_from_score(config)
    hours_per_step = record.elapsed_s / SECONDS_PER_HOUR / max(record.step, 1)
    lines = [f"### {run.name}", "",
             f"{config.model.name or config.model.arch}, from {config.init_from or 'scratch'}; schedule "
             f"{config.schedule}, lr {config.lr:g}, ema {config.ema:g}, degradations "
             f"{'on' if config.degrade else 'off'}, {config.threads} thread(s); {record.step} steps in "
             f"{record.elapsed_s / SECONDS_PER_HOUR:.2f} h ({mean_rate:.2f} steps/s on average, shared machine)."
             f"{' Validation: clean and JPEG-' + str(config.val_jpeg) + ' LR, mean.' if config.val_jpeg else ''}",
             "", "| step | hours | val Y-PSNR (mean) | vs start | per scale |", "|---|---|---|---|---|"]
    if start is not None:
        lines.append(f"| 0 | 0.00 | {start:.3f} | — | (the init_from weights) |")
    for r in vals:
        gain = f"{r['val_psnr'] - start:+.3f}" if start is not None else "—"
        scales = ", ".join(f"{k} {v:.2f}" for k, v in r["val_psnr_by_scale"].items())
        lines.append(f"| {r['step']} | {r['step'] * hours_per_step:.2f} | {r['val_psnr']:.3f} | {gain} | {scales} |")
    if start is not None and vals:
        best = max(vals, key=lambda r: r["val_psnr"])
        hours = best["step"] * hours_per_step
        lines += ["", f"Best at step {best['step']}: {best['val_psnr'] - start:+.3f} dB in {hours:.2f} h, "
                      f"{(best['val_psnr'] - start) / hours:+.3f} dB per training hour."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (log.jsonl, and run.json or last.pt)")
    parser.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    args = parser.parse_args()
    body = "\n\n".join(report(run) for run in args.runs)
    text = (f"# Training runs\n\nProduced by `python scripts/training_report.py "
            f"{' '.join(str(r) for r in args.runs)} --write`. Validation: the configs' held-out training images "
            f"(never a benchmark set), mean Y-PSNR over ×2/×3/×4. Hours are the wall time the run process was alive, "
            f"pauses included (a run stopped with kill -STOP while another trained still counts them).\n\n{body}\n")
    print(text)
    if args.write:
        RESULT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
