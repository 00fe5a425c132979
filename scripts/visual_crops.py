"""Side-by-side crops so people can see the detail: bicubic | lite | ground truth, at ×4.

    python scripts/visual_crops.py        # writes docs/images/crops_x4.png and docs/results/visual.md

LR is made from the benchmark HR by `enlarge eval`'s own reader and `make_lr`; each row is one crop.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from enlarge.engine import render
from enlarge.models import load_model
from enlarge.evaluation import LEVELS, make_lr, read_rgb8

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = REPO.parent / "shared" / "data" / "benchmark"
IMAGE = REPO / "docs" / "images" / "crops_x4.png"
RESULT = REPO / "docs" / "results" / "visual.md"
SCALE = 4
CROP = 128  # HR pixels per side of each crop
LABEL_HEIGHT = 16
# (dataset, file stem, top, left) of each HR crop: text, texture, edges
CROPS = (("Urban100", "img_004", 300, 500), ("Set14", "baboon", 100, 250), ("B100", "8023", 100, 150))
COLUMNS = ("bicubic", "lite", "ground truth")


def find(dataset: str, stem: str) -> Path:
    return next(p for p in (BENCHMARK / dataset).rglob(f"{stem}.*"))


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def labelled_grid(rows: list[np.ndarray], columns: tuple[str, ...], cell: int) -> Image.Image:
    """Rows of side-by-side 8-bit crops (each `cell` pixels wide) stacked, under a line naming the columns."""
    grid = np.concatenate(rows, axis=0)
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + LABEL_HEIGHT), "white")
    canvas.paste(Image.fromarray(grid), (0, LABEL_HEIGHT))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(columns):
        draw.text((i * cell + 4, 2), name, fill="black")
    return canvas


def main() -> int:
    if not BENCHMARK.exists():
        print(f"benchmark data not found at {BENCHMARK}", file=sys.stderr)
        return 1
    models = [load_model("bicubic"), load_model("lite")]
    rows = []
    for dataset, stem, top, left in CROPS:
        hr8 = read_rgb8(find(dataset, stem))[:, top : top + CROP, left : left + CROP]
        hr_t = hr8[None].float() / LEVELS
        lr = make_lr(hr8, SCALE)[None].float() / LEVELS
        outs = [to_uint8(render(m, lr, (CROP, CROP))) for m in models]
        rows.append(np.concatenate(outs + [to_uint8(hr_t)], axis=1))
    canvas = labelled_grid(rows, COLUMNS, CROP)
    IMAGE.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(IMAGE)
    listing = ", ".join(f"{d}/{s}" for d, s, _, _ in CROPS)
    RESULT.write_text(f"# Visual crops\n\nProduced by `python scripts/visual_crops.py`: ×{SCALE} from MATLAB-style "
                      f"bicubic LR of {CROP}×{CROP} HR crops ({listing}); columns: {', '.join(COLUMNS)}.\n\n"
                      f"![bicubic vs lite vs ground truth](../images/{IMAGE.name})\n")
    print(f"wrote {IMAGE.relative_to(REPO)} and {RESULT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
