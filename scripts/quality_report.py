"""Write docs/results/quality.md from `enlarge eval --json` files, beside published FSRCNN rows.

    enlarge eval --model lite --data ../shared/data/benchmark/{Set5,Set14,B100,Urban100} \\
        --scales 2,3,4,6,8,12 --json runs/eval/quality.json
    enlarge eval --model lite --data ../shared/data/benchmark/{Set5,Set14} --scales 2,3,4 \\
        --degrade jpeg75 --json runs/eval/quality-jpeg75.json
    python scripts/quality_report.py runs/eval/quality.json runs/eval/quality-jpeg75.json

The FSRCNN rows are published numbers (Y-PSNR as tabulated in later papers), not measured here; every other
number comes from the JSON files. The checks are the `lite` targets: at ×2/×3/×4 at least three quarters of
FSRCNN's gain over bicubic on every set (must) or above FSRCNN (target); beyond ×4 at least +0.3 dB (must) or
+0.5 dB (target) over bicubic.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "quality.md"
FSRCNN = {  # dataset → scale → published Y-PSNR
    "Set5": {2: 37.00, 3: 33.16, 4: 30.72},
    "Set14": {2: 32.63, 3: 29.43, 4: 27.61},
    "B100": {2: 31.53, 3: 28.60, 4: 26.98},
    "Urban100": {2: 29.88, 3: 26.43, 4: 24.62},
}
FSRCNN_SHARE = 0.75  # must: this share of FSRCNN's gain over bicubic
BEYOND_MUST, BEYOND_TARGET = 0.3, 0.5  # dB over bicubic beyond the training range
MAIN_MODEL = "lite"


def load(paths: list[Path]) -> tuple[dict, list[str]]:
    """rows[(degrade, dataset)][model][scale] = (psnr, ssim); plus the datasets in first-seen order."""
    rows: dict = defaultdict(lambda: defaultdict(dict))
    datasets: list[str] = []
    for path in paths:
        data = json.loads(path.read_text())
        degrade = data.get("degrade") or "clean"
        for row in data["rows"]:
            rows[(degrade, row["dataset"])][row["model"]][int(row["scale"])] = (row["psnr"], row["ssim"])
            if row["dataset"] not in datasets:
                datasets.append(row["dataset"])
    return rows, datasets


def verdict(dataset: str, scale: int, ours: float, bicubic: float) -> str:
    if scale in FSRCNN.get(dataset, {}):
        fsrcnn = FSRCNN[dataset][scale]
        if ours >= fsrcnn:
            return "target ✓"
        return "must ✓" if ours - bicubic >= FSRCNN_SHARE * (fsrcnn - bicubic) else "must ✗"
    gain = ours - bicubic
    return "target ✓" if gain >= BEYOND_TARGET else ("must ✓" if gain >= BEYOND_MUST else "must ✗")


def section(degrade: str, dataset: str, models: dict) -> str:
    scales = sorted({s for per in models.values() for s in per})
    head = "| model | " + " | ".join(f"×{s}" for s in scales) + " |"
    lines = [f"### {dataset}" + ("" if degrade == "clean" else f" (LR degraded: {degrade})"), "",
             "Y-PSNR dB / SSIM", "", head, "|---" * (len(scales) + 1) + "|"]
    for model, per in models.items():
        cells = [f"{per[s][0]:.2f} / {per[s][1]:.4f}" if s in per else "" for s in scales]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if degrade == "clean" and dataset in FSRCNN:
        lines.append("| FSRCNN (published) | " + " | ".join(
            f"{FSRCNN[dataset][s]:.2f}" if s in FSRCNN[dataset] else "" for s in scales) + " |")
    if degrade == "clean" and MAIN_MODEL in models and "bicubic" in models:
        ours, bic = models[MAIN_MODEL], models["bicubic"]
        lines.append(f"| {MAIN_MODEL} vs targets | " + " | ".join(
            f"{ours[s][0] - bic[s][0]:+.2f} dB, {verdict(dataset, s, ours[s][0], bic[s][0])}"
            if s in ours and s in bic else "" for s in scales) + " |")
    return "\n".join(lines)


def main() -> int:
    paths = [Path(p) for p in sys.argv[1:]]
    if not paths:
        print(__doc__)
        return 2
    rows, datasets = load(paths)
    keys = sorted(rows, key=lambda k: (k[0] != "clean", k[0], datasets.index(k[1])))
    body = "\n\n".join(section(d, ds, rows[(d, ds)]) for d, ds in keys)
    commands = __doc__.split("\n\n")[1]
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text("# Quality\n\nProduced by:\n\n```\n" + commands.strip() + "\n```\n\n"
                      "LR made with the MATLAB-faithful bicubic `imresize`; Y-PSNR with a border of `scale` pixels, "
                      "SSIM on Y; outputs quantised to 8 bits before scoring. FSRCNN rows are published numbers, "
                      "the rest are measured.\n\n" + body + "\n")
    print(f"wrote {RESULT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
