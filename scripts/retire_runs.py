"""Retire finished training runs: keep their record, drop their large resumable state from the working tree.

    python scripts/retire_runs.py checkpoints/detail checkpoints/detail-anneal [--drop-best]

A committed run folder holds `last.pt` (everything a resume needs: a lite run's is 3 MB, a detail run's 20 MB),
`best.pt`, `log.jsonl` and `run.json`. Once nothing continues a run, its `last.pt` only makes every clone and every
GPU upload larger (what travels to a GPU machine is capped at 64 MiB). This writes each run's `run.json` with the
validation score of its `init_from` weights (so `training_report.py` no longer needs those weights), then deletes
`last.pt`, and `best.pt` too with `--drop-best`. Every start score is measured before anything is deleted, since one
run's weights are often the next one's `init_from`. The files stay in git history (`git checkout COMMIT -- PATH`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from enlarge.training.checkpoint import BEST, LAST, load_record, save_record
from enlarge.training.config import config_from_dict
from enlarge.training.validation_set import init_from_score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (with last.pt or run.json)")
    parser.add_argument("--drop-best", action="store_true", help="delete best.pt too (the run is history)")
    args = parser.parse_args()
    records = {}
    for run in args.runs:
        record = load_record(run)
        if record.start_psnr is None:
            record = dataclasses.replace(
                record, start_psnr=init_from_score(config_from_dict(record.config, source=str(run))))
        records[run] = record
        print(f"{run}: step {record.step}, best {record.best_psnr}, start {record.start_psnr}")
    for run, record in records.items():
        save_record(run, record)
        for name in (LAST, BEST) if args.drop_best else (LAST,):
            (run / name).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
