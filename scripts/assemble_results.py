"""Assemble docs/RESULTS.md from the generated parts in docs/results/*.md (`make results`).

Each part is written by a benchmark script or an `enlarge` command and says which; this script only joins
them in a fixed order, so results are never edited by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = REPO / "docs" / "results"
TARGET = REPO / "docs" / "RESULTS.md"
ORDER = ("quality", "quality-recipe", "quality-real", "quality-real-runs", "point-sampling", "jpeg-routing", "real-photo", "visual", "design-lite", "design-detail", "training", "training-runs", "speed", "onnx-speed", "cost", "cost-avx2", "decoder-steps", "memory", "adaptive", "adaptive-detail", "compression", "compression-head", "batch", "serve")
HEADER = (
    "# Results\n\n"
    "Assembled by `make results` from `docs/results/*.md`; each section names the command that produced it.\n"
)


def shift_headings(text: str) -> str:
    """Demote every Markdown heading one level so each part nests under this page's title."""
    return "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())


def main() -> int:
    parts = sorted(PARTS.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))
    body = [HEADER] + [shift_headings(p.read_text().strip()) + "\n" for p in parts]
    TARGET.write_text("\n".join(body))
    print(f"wrote {TARGET.relative_to(REPO)} from {len(parts)} parts: {', '.join(p.stem for p in parts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
