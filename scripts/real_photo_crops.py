"""Side-by-side crops of a real, JPEG-compressed photo enlarged by bicubic, `lite` and `lite-real`.

    python scripts/real_photo_crops.py     # writes docs/results/real-photo.png and docs/results/real-photo.md

The photos are `examples/coffee.png` and `examples/chelsea.png` (CC0, in no benchmark and no training set),
made the way a photo reaches a user: halved with Pillow's antialiased Lanczos, saved as a JPEG of quality
JPEG_QUALITY (4:2:0), then read back by `enlarge`'s own reader and enlarged ×SCALE through `Upscaler` with each
model named, and once with the default model, whose choice (from the JPEG's quantisation tables) the page quotes.
Each row is one crop: the three enlargements, then the original photo. Y-PSNR (shave = SCALE) is of the whole
enlarged photo against the original.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from visual_crops import labelled_grid  # beside this script

from enlarge.fileutil import atomic_write_bytes, atomic_write_text
from enlarge.imageio import decode_image_bytes
from enlarge.metrics import psnr
from enlarge.sizing import SizeRequest
from enlarge.upscaler import Upscaler

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "docs" / "results" / "real-photo.png"
RESULT = REPO / "docs" / "results" / "real-photo.md"
SCALE = 2
JPEG_QUALITY = 40  # a chat app's or a web page's re-compression
CROP = 112  # output pixels per side of each crop
# (file in examples/, top, left) of each crop in the original photo: the cup's rim and saucer, the cat's face
PHOTOS = (("coffee.png", 40, 300), ("chelsea.png", 70, 170))
MODELS = ("bicubic", "lite", "lite-real")
COLUMNS = (*MODELS, "original")
MAX_BYTES = 300_000  # the page's image budget
LEVELS = 255


def as_user_gets_it(original: Image.Image) -> bytes:
    """The photo halved (antialiased) and saved as a JPEG of JPEG_QUALITY: the input a user would enlarge."""
    small = original.resize((original.width // SCALE, original.height // SCALE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """H×W×3 floats in [0, 1] → 3×H×W float64, rounded to 8 bits as a written file would be."""
    return torch.from_numpy(np.round(pixels * LEVELS) / LEVELS).permute(2, 0, 1).double()


def main() -> int:
    upscalers = {name: Upscaler(name) for name in MODELS}
    default = Upscaler()
    rows, table, choices = [], [], []
    for file, top, left in PHOTOS:
        original = Image.open(REPO / "examples" / file).convert("RGB")
        width, height = (original.width // SCALE) * SCALE, (original.height // SCALE) * SCALE
        original = original.crop((0, 0, width, height))
        decoded = decode_image_bytes(as_user_gets_it(original), name=file)
        plan = SizeRequest(scale=SCALE).plan((decoded.width, decoded.height))
        reference = np.asarray(original, dtype=np.float32) / LEVELS
        outputs = {name: up.upscale_image(decoded, plan).pixels for name, up in upscalers.items()}
        scores = {name: psnr(to_tensor(out), to_tensor(reference), SCALE) for name, out in outputs.items()}
        table.append(f"| {file} | " + " | ".join(f"{scores[m]:.2f}" for m in MODELS) + " |")
        choices.append(f"{file}: {default.upscale_image_reported(decoded, plan)[1].choice}")
        cells = [*outputs.values(), reference]
        crops = [np.round(c[top : top + CROP, left : left + CROP] * LEVELS).astype(np.uint8) for c in cells]
        rows.append(np.concatenate(crops, axis=1))
    canvas = labelled_grid(rows, COLUMNS, CROP)
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG", optimize=True)
    if len(buffer.getvalue()) > MAX_BYTES:
        print(f"the crops take {len(buffer.getvalue()):,} bytes, over {MAX_BYTES:,}: use smaller crops", file=sys.stderr)
        return 1
    atomic_write_bytes(IMAGE, buffer.getvalue())
    atomic_write_text(RESULT, "\n".join([
        "# A real JPEG photo, enlarged",
        "",
        "Produced by `python scripts/real_photo_crops.py`: each photo (examples/, CC0, in no benchmark or training "
        f"set) halved with Pillow's Lanczos and saved as a JPEG of quality {JPEG_QUALITY} (4:2:0), then enlarged "
        f"×{SCALE} by each model; columns: {', '.join(COLUMNS)}.",
        "",
        f"![bicubic | lite | lite-real | original, ×{SCALE} from a JPEG-{JPEG_QUALITY} input]({IMAGE.name})",
        "",
        f"Y-PSNR (dB, shave = {SCALE}) of the whole enlarged photo against the original:",
        "",
        "| photo | " + " | ".join(MODELS) + " |",
        "|---|" + "---:|" * len(MODELS),
        *table,
        "",
        "What the default model chose (`enlarge upscale` without `--model`):",
        "",
        *(f"- {choice}" for choice in choices),
        "",
    ]))
    print(f"wrote {IMAGE.relative_to(REPO)} ({len(buffer.getvalue()):,} bytes) and {RESULT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
