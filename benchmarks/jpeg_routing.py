"""Which model should enlarge a JPEG: the clean `lite` or its robust twin `lite-real`, by the JPEG's quality.

    python benchmarks/jpeg_routing.py                          # Set5 and Set14 at ×2 and ×4, JPEG q 30..100
    python benchmarks/jpeg_routing.py --write --write-card     # docs/results/jpeg-routing.md, and lite's card

Every image of each set at each scale goes through the protocol of `enlarge eval` (HR cropped to a multiple of
the scale, MATLAB-bicubic LR, SR rounded to 8 bits, Y-PSNR against the clean HR with shave = scale); the LR is
scored clean and re-encoded as a JPEG at each quality (Pillow/libjpeg, 4:2:0, what `--degrade jpegQ` does).

The threshold is the crossover of the mean gain of the twin over the clean model across quality: below the
lowest measured quality from which the clean model is at least as good at that and every higher quality, the
twin wins; between the last quality the twin wins and that one, the crossing is interpolated linearly and
rounded up. Routing by it (clean LR to the clean model, JPEGs below the threshold to the twin) is then scored per
item: right when it picked the model with the higher PSNR on that image, scale and quality, over the clean and
JPEG items together (issue 18's target: at least 90%). `--write-card` records the threshold in the clean model's
card as `extra.robust_twin`, which the default model and `--model auto` route by (autoselect.TwinRoute); a
re-export keeps it (training/export.py), so re-run this after retraining either model.

These are quality numbers: a busy machine makes them slower, not different.
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from enlarge.evaluation import Degradation, Settings, find_dataset, load_pair, score_image
from enlarge.fileutil import atomic_write_text
from enlarge.models.card import ROBUST_TWIN, ModelCard, RobustTwin, card_path_for
from enlarge.models.registry import LoadedModel, load_model

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "benchmark"
RESULT = REPO / "docs" / "results" / "jpeg-routing.md"
SETS = "Set5,Set14"
SCALES = "2,4"
QUALITIES = "30,40,50,60,70,75,80,85,90,95,98,100"
CLEAN = "clean"  # the condition of the undegraded LR
CLEAN_MODEL, TWIN_MODEL = "lite", "lite-real"
GAIN_DIGITS = 3


def measure(
    models: tuple[LoadedModel, LoadedModel], folders: list[Path], scales: list[int], qualities: list[int],
    limit: int | None,
) -> dict[tuple[str, int, str, object], tuple[float, float]]:
    """(set, scale, image, condition) → (clean model's Y-PSNR, twin's); condition CLEAN or a JPEG quality."""
    scores = {}
    for folder in folders:
        dataset = find_dataset(folder, limit)
        for scale in scales:
            settings = Settings(scales=(scale,))
            for hr_path in dataset.images:
                hr, lr = load_pair(dataset, hr_path, scale, settings)
                name = hr_path.relative_to(dataset.hr_root).with_suffix("").as_posix()
                conditions = {CLEAN: lr} | {q: Degradation(jpeg_quality=q).degrade(lr, scale, name) for q in qualities}
                for condition, degraded in conditions.items():
                    psnrs = [score_image(m, hr, degraded, scale, name, settings)[0].psnr for m in models]
                    scores[(dataset.name, scale, name, condition)] = (psnrs[0], psnrs[1])
                print(f"{dataset.name} ×{scale} {name}", file=sys.stderr, flush=True)
    return scores


def mean_gains(scores: dict, key=lambda k: k[3]) -> dict:
    """Mean twin − clean PSNR (dB) grouped by `key` of the item (default: by condition)."""
    groups: dict = defaultdict(list)
    for item, (clean, twin) in scores.items():
        groups[key(item)].append(twin - clean)
    return {group: statistics.fmean(values) for group, values in groups.items()}


def crossover(gains: dict[int, float]) -> int:
    """The routing threshold from the mean gain of the twin per JPEG quality (module docstring)."""
    qualities = sorted(gains)
    clean_from = next(
        (i for i in range(len(qualities)) if all(gains[q] <= 0 for q in qualities[i:])), len(qualities)
    )
    if clean_from == len(qualities):  # the twin wins even at the highest quality measured
        return qualities[-1] + 1
    if clean_from == 0:  # the clean model wins even at the lowest
        return qualities[0]
    low, high = qualities[clean_from - 1], qualities[clean_from]
    where = low + (high - low) * gains[low] / (gains[low] - gains[high])
    return math.ceil(where)


def right_shares(scores: dict, below: int) -> dict[str, float]:
    """How often each policy picks the model with the higher PSNR: routing by `below`, always clean, always twin."""
    def share(pick_twin) -> float:
        right = [(twin >= clean) if pick_twin(item[3]) else (clean >= twin) for item, (clean, twin) in scores.items()]
        return sum(right) / len(right)

    return {
        f"routed (JPEG < {below} → twin)": share(lambda c: c != CLEAN and c < below),
        "always the clean model": share(lambda c: False),
        "always the twin": share(lambda c: True),
    }


def report(scores: dict, names: tuple[str, str], below: int, shares: dict[str, float], command: str) -> str:
    """The Markdown page: mean PSNR of both models per quality, the gain per set and scale, the routing's hits."""
    clean_name, twin_name = names
    by_condition: dict = defaultdict(list)
    for item, pair in scores.items():
        by_condition[item[3]].append(pair)
    conditions = [CLEAN, *sorted(c for c in by_condition if c != CLEAN)]
    groups = sorted({(item[0], item[1]) for item in scores}, key=lambda g: (g[1], g[0]))
    per_group = mean_gains(scores, key=lambda k: (k[0], k[1], k[3]))
    lines = [
        f"# JPEG routing: `{clean_name}` or `{twin_name}` by JPEG quality",
        "",
        "Produced by (quality numbers, so a busy machine changes their time, not their values):",
        "",
        "```",
        command,
        "```",
        "",
        f"LR: MATLAB bicubic, then a JPEG at quality q (Pillow, 4:2:0), or clean; Y-PSNR (dB) against the clean HR, "
        f"shave = scale, mean over {len(scores) // len(conditions)} image×scale items "
        f"({', '.join(f'{s} ×{x}' for s, x in groups)}).",
        "",
        f"| LR | {clean_name} | {twin_name} | {twin_name} − {clean_name} | routed to |",
        "|---|---:|---:|---:|---|",
    ]
    for condition in conditions:
        pairs = by_condition[condition]
        clean, twin = (statistics.fmean(p[i] for p in pairs) for i in (0, 1))
        routed = twin_name if condition != CLEAN and condition < below else clean_name
        label = "clean (PNG)" if condition == CLEAN else f"JPEG q{condition}"
        lines.append(f"| {label} | {clean:.2f} | {twin:.2f} | {twin - clean:+.2f} | {routed} |")
    lines += [
        "",
        f"Crossover: **JPEGs below quality {below} go to `{twin_name}`**, everything else to `{clean_name}` "
        f"(recorded in `{clean_name}`'s card as `extra.{ROBUST_TWIN}`).",
        "",
        f"{twin_name} − {clean_name} (dB) per set and scale:",
        "",
        "| set | " + " | ".join("clean" if c == CLEAN else f"q{c}" for c in conditions) + " |",
        "|---|" + "---:|" * len(conditions),
    ]
    for dataset, scale in groups:
        cells = " | ".join(f"{per_group[(dataset, scale, c)]:+.2f}" for c in conditions)
        lines.append(f"| {dataset} ×{scale} | {cells} |")
    lines += [
        "",
        "How often each policy picks the better of the two models, per image, scale and LR (clean and every "
        "quality above, all items equally weighted):",
        "",
        "| policy | right |",
        "|---|---:|",
        *(f"| {policy} | {share:.1%} |" for policy, share in shares.items()),
    ]
    return "\n".join(lines) + "\n"


def write_card(clean: LoadedModel, twin: LoadedModel, below: int, gains: dict, shares: dict, measured: dict) -> Path:
    """Record the route in the clean model's card (beside its weights)."""
    source = Path(clean.descriptor.source)
    path = card_path_for(source)
    card = ModelCard.read(path)
    entry = RobustTwin(
        twin.descriptor.name, below,
        {**measured, "gain_db": {str(q): round(g, GAIN_DIGITS) for q, g in gains.items()},
         "right_share": {policy: round(share, GAIN_DIGITS) for policy, share in shares.items()}},
    )
    card.extra[ROBUST_TWIN] = asdict(entry)
    card.write(path)
    return path


def reproduce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The command that makes this page again: the settings that differ from the defaults (the data folder aside)."""
    parts = ["python", "benchmarks/jpeg_routing.py"]
    for key in ("model", "twin", "sets", "scales", "qualities"):
        if getattr(args, key) != parser.get_default(key):
            parts += [f"--{key}", str(getattr(args, key))]
    return shlex.join([*parts, "--write", "--write-card"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=CLEAN_MODEL, help="the clean model (default %(default)s)")
    parser.add_argument("--twin", default=TWIN_MODEL, help="its robust twin (default %(default)s)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding the benchmark sets")
    parser.add_argument("--sets", default=SETS, help="comma-separated sets (default %(default)s)")
    parser.add_argument("--scales", default=SCALES, help="comma-separated integer scales (default %(default)s)")
    parser.add_argument("--qualities", default=QUALITIES, help="comma-separated JPEG qualities (default %(default)s)")
    parser.add_argument("--limit", type=int, help="only the first N images of each set (a quick look)")
    parser.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    parser.add_argument("--write-card", action="store_true", help="record the threshold in the clean model's card")
    args = parser.parse_args()
    clean, twin = load_model(args.model), load_model(args.twin)
    if (args.write or args.write_card) and args.limit is not None:
        parser.error("--write and --write-card need every image (no --limit)")
    sets = [name for name in args.sets.split(",") if name]
    scales = [int(s) for s in args.scales.split(",") if s]
    qualities = sorted(int(q) for q in args.qualities.split(",") if q)
    scores = measure((clean, twin), [args.data / name for name in sets], scales, qualities, args.limit)
    gains = {c: g for c, g in mean_gains(scores).items() if c != CLEAN}
    below = crossover(gains)
    shares = right_shares(scores, below)
    text = report(scores, (clean.descriptor.name, twin.descriptor.name), below, shares, reproduce(args, parser))
    print(text)
    if args.write:
        atomic_write_text(RESULT, text)
        print(f"wrote {RESULT}", file=sys.stderr)
    if args.write_card:
        measured = {"sets": sets, "scales": scales, "qualities": qualities, "benchmark": "benchmarks/jpeg_routing.py"}
        print(f"wrote {write_card(clean, twin, below, gains, shares, measured)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
