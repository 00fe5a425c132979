"""Write docs/results/quality-real.md from `enlarge eval --degrade` JSON files: bicubic, lite and lite-real on LR
made the way real photos are made, with issue 18's targets checked.

    B=../shared/data/benchmark; E="enlarge eval --model lite --model lite-real"
    $E --data $B/Set5 $B/Set14 $B/B100 --scales 2,3,4 --degrade jpeg75 --json runs/eval/real-jpeg75.json
    $E --data $B/Set5 $B/Set14 --scales 2,3,4 --degrade nearest --json runs/eval/real-nearest.json
    $E --data $B/Set5 $B/Set14 --scales 2,3,4 --json runs/eval/real-clean.json
    $E --data $B/Set5 $B/Set14 $B/B100 --scales 2 --degrade jpeg50 --json runs/eval/real-jpeg50.json
    for d in jpeg90 noise5 nearest+noise5+jpeg75; do
        $E --data $B/Set5 $B/Set14 --scales 2,4 --degrade $d --json runs/eval/real-$d.json
    done
    python scripts/quality_real_report.py runs/eval/real-*.json

Every number comes from the JSON files. The targets (Y-PSNR against the clean HR): on JPEG-75 LR, lite-real at
least +1.0 dB over bicubic at ×2 and +0.6 dB at ×4, and at least lite + 0.5 dB; on JPEG-50 LR at least +0.8 dB
over bicubic at ×2; on LR made without antialiasing (nearest), at least bicubic + 0.3 dB at ×2 and ×4; on
clean LR at most 0.3 dB below lite.
Runs that were trained and measured but not shipped are described by hand in quality-real-runs.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "quality-real.md"
MISSING = "—"  # a dataset × scale a degradation was not measured at
BASELINE, CLEAN_MODEL, TWIN = "bicubic", "lite", "lite-real"
# degradation → scale → (reference model, dB that lite-real must add over it)
TARGETS = {
    "jpeg75": {2: [(BASELINE, 1.0), (CLEAN_MODEL, 0.5)], 4: [(BASELINE, 0.6), (CLEAN_MODEL, 0.5)]},
    "jpeg50": {2: [(BASELINE, 0.8)]},
    "nearest": {2: [(BASELINE, 0.3)], 4: [(BASELINE, 0.3)]},
    "clean": {scale: [(CLEAN_MODEL, -0.3)] for scale in (2, 3, 4)},  # auto's mistakes stay cheap
}
ORDER = ("clean", "jpeg50", "jpeg75", "jpeg90", "noise5", "nearest", "nearest+noise5+jpeg75")


def load(paths: list[Path]) -> dict[str, dict[tuple[str, str, int], tuple[float, float]]]:
    """degrade → (dataset, model, scale) → (psnr, ssim)."""
    tables: dict = {}
    for path in paths:
        data = json.loads(path.read_text())
        rows = tables.setdefault(data["degrade"] or "clean", {})
        for row in data["rows"]:
            rows[(row["dataset"], row["model"], int(row["scale"]))] = (row["psnr"], row["ssim"])
    return tables


def section(degrade: str, rows: dict[tuple[str, str, int], tuple[float, float]]) -> list[str]:
    """One degradation: PSNR / SSIM per dataset and model, then lite-real's margins and the targets."""
    datasets = list(dict.fromkeys(key[0] for key in rows))
    models = list(dict.fromkeys(key[1] for key in rows))
    scales = sorted({key[2] for key in rows})
    title = "## LR clean (MATLAB bicubic only)" if degrade == "clean" else f"## LR degraded: {degrade}"
    lines = [title, "", "| dataset | model | " + " | ".join(f"×{s}" for s in scales) + " |",
             "|---|---|" + "---:|" * len(scales)]
    for dataset in datasets:
        for model in models:
            cells = [f"{rows[(dataset, model, s)][0]:.2f} / {rows[(dataset, model, s)][1]:.4f}"
                     if (dataset, model, s) in rows else MISSING for s in scales]
            lines.append(f"| {dataset} | {model} | " + " | ".join(cells) + " |")
        for reference in (BASELINE, CLEAN_MODEL):
            cells = []
            for scale in scales:
                if (dataset, TWIN, scale) not in rows:
                    cells.append(MISSING)
                    continue
                margin = rows[(dataset, TWIN, scale)][0] - rows[(dataset, reference, scale)][0]
                need = dict(TARGETS.get(degrade, {}).get(scale, [])).get(reference)
                verdict = "" if need is None else f" (≥ {need:+g}: {'✓' if margin >= need else '✗'})"
                cells.append(f"{margin:+.2f} dB{verdict}")
            lines.append(f"| {dataset} | {TWIN} − {reference} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    tables = load([Path(arg) for arg in argv])
    order = [d for d in ORDER if d in tables] + [d for d in tables if d not in ORDER]
    lines = [
        "# Quality on real-photo degradations: bicubic, `lite`, `lite-real`",
        "",
        "Y-PSNR (dB, shave = scale) / SSIM (Y) against the clean HR; the LR is made as `enlarge eval --degrade` "
        "says: `jpegQ` re-encodes the MATLAB-bicubic LR as a JPEG of quality Q (Pillow, 4:2:0), `noise5` adds "
        "Gaussian noise of σ = 5 levels (seeded per image), `nearest` point-samples the HR (no antialiasing), and "
        "`+` joins steps in that order. Rows `lite-real − X` are margins; issue 18's targets are marked ✓ / ✗. "
        "Clean-LR scores of the same models are in `quality-recipe.md`; which of the two models the default "
        "picks for a JPEG of each quality in `jpeg-routing.md`; a real JPEG photo side by side in `real-photo.md`; "
        "runs trained for these targets but not shipped in `quality-real-runs.md`. "
        "Produced by:",
        "",
        "```",
        *[line[4:] for line in __doc__.split("\n\n")[1].splitlines()],
        "```",
        "",
    ]
    for degrade in order:
        lines += section(degrade, tables[degrade])
    RESULT.write_text("\n".join(lines))
    print(f"wrote {RESULT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
