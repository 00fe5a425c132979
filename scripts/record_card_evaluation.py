"""Record a bundled model's quality pin in its model card: PSNR/SSIM on Set5 at x2 and x4, the standard protocol.

    PYTHONPATH=src python scripts/record_card_evaluation.py --model lite

Writes the rows (as `enlarge eval --json` reports them, without per-image scores) into the card's `evaluation`;
tests/test_shipped_quality.py then checks the shipped weights still reach them. Run it whenever the bundled
weights change (`make weights` does).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from enlarge.evaluation import Row, Settings, evaluate
from enlarge.models.card import ModelCard, card_path_for
from enlarge.models.specs import SPECS, bundled_weights

REPO = Path(__file__).resolve().parents[1]
PIN_DATASET = REPO.parent / "shared" / "data" / "benchmark" / "Set5"
PIN_SCALES = (2, 4)
PIN_SETTINGS = Settings(scales=PIN_SCALES)


def pin_rows(model: str) -> list[dict[str, Any]]:
    """The model's own rows (the bicubic baseline left out), as the card keeps them."""
    rows: list[Row] = evaluate([model], [PIN_DATASET], PIN_SETTINGS, progress=False)
    kept = []
    for row in rows:
        if row.model == model:
            record = asdict(row)
            del record["per_image"]
            kept.append({**record, "metric": PIN_SETTINGS.metric, "degrade": PIN_SETTINGS.degrade})
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lite", help="a registered model with bundled weights")
    args = parser.parse_args()
    weights = bundled_weights(SPECS[args.model])
    if weights is None:
        raise SystemExit(f"{args.model} has no bundled weights")
    card_path = card_path_for(weights)
    card = ModelCard.read(card_path)
    card.evaluation = pin_rows(args.model)
    card.write(card_path)
    for row in card.evaluation:
        print(f"{row['model']} {row['dataset']} x{row['scale']}: {row['psnr']:.3f} dB, SSIM {row['ssim']:.4f}")
    print(f"wrote {card_path}")


if __name__ == "__main__":
    main()
