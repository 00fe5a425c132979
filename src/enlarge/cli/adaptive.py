"""`enlarge calibrate-adaptive`: fit a model's score → expected-gain lookup on training data and store it in its card.

Calibration images are the held-out validation images of the training config, then evenly spaced training images,
each centre-cropped; never the benchmark sets. For each image and scale the HR crop is shrunk with MATLAB's
bicubic (as the SR protocol does), enlarged by the model and by its little path, and both errors summed per
routing block (engine/adaptive/). The card gets the table under `extra["adaptive"]`; re-run after every export,
which writes a fresh card.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm import tqdm

from enlarge.engine.adaptive import CALIBRATION_KEY, BlockErrors, block_errors, fit_calibration, little_model
from enlarge.errors import ConfigError, ModelError
from enlarge.evaluation import LEVELS, make_lr, parse_scales, read_rgb8
from enlarge.imagefolders import find_images
from enlarge.models.card import ModelCard, card_path_for
from enlarge.models.registry import LoadedModel, load_model
from enlarge.training.config import load_config

DEFAULT_CONFIG = Path("configs/lite.yaml")
DEFAULT_IMAGES = 32
DEFAULT_SCALES = "2,3,4"
CROP = 384  # HR side of the centre crop of each calibration image


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `calibrate-adaptive` command."""
    parser = sub.add_parser(
        "calibrate-adaptive",
        description="Measure, on training images, how much a model gains over its little companion (bicubic for "
        "lite, lite for detail) for each texture score and scale, tune the default routing threshold, and store "
        "both in the model's card. Weights given as a path (a checkpoint export) get the calibration in their card.",
    )
    parser.add_argument("--model", required=True, metavar="NAME|PATH", help="registered name or .safetensors file")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, metavar="YAML",
        help="training config whose data to use (default %(default)s; run from the repository root)",
    )
    parser.add_argument(
        "--images", type=int, default=DEFAULT_IMAGES, metavar="N",
        help="calibration images: the config's validation images, then evenly spaced training images (default "
        "%(default)s)",
    )
    parser.add_argument("--scales", default=DEFAULT_SCALES, help="integer scales (default %(default)s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate, write the card, print what the default threshold does on the calibration images."""
    if args.images < 1:
        raise ConfigError(f"--images must be at least 1, got {args.images}")
    scales = parse_scales(args.scales)
    model = load_model(args.model)
    card_path = model_card_path(model)
    little = little_model(model)
    images = calibration_images(args.config, args.images)
    samples: list[BlockErrors] = []
    with tqdm(total=len(images) * len(scales), unit="img", desc="calibrate") as bar:
        for path in images:
            hr_full = read_rgb8(path)
            for scale in scales:
                hr = centre_crop(hr_full, CROP, scale)
                lr = make_lr(hr, scale).float().unsqueeze(0) / LEVELS
                hr_levels = hr.float().unsqueeze(0) / LEVELS
                samples.append(block_errors(model, little, lr, hr_levels, model.descriptor.route_block))
                bar.update()
    data = {"config": str(args.config), "images": len(images), "crop": CROP, "little": little.descriptor.source}
    calibration = fit_calibration(samples, little.descriptor.name, data)
    card = ModelCard.read(card_path)
    card.extra[CALIBRATION_KEY] = calibration.to_dict()
    card.write(card_path)
    print(f"wrote the adaptive calibration of {model.descriptor.name} to {card_path}")
    print("scale  threshold  routed  PSNR little → adaptive / big (Y, calibration images)")
    for calibrated, table in sorted(calibration.scales.items()):
        s = table.summary
        print(f"×{calibrated:<5g} {table.threshold:9.2f}  {s['routed']:6.0%}  "
              f"{s['psnr_little']:.2f} → {s['psnr_adaptive']:.2f} / {s['psnr_big']:.2f}")
    return 0


def model_card_path(model: LoadedModel) -> Path:
    """The card file of a model loaded from our weights; ModelError for models without one (official .pth)."""
    if model.descriptor.card is None:
        raise ModelError(
            f"model {model.descriptor.name!r} has no model card to store a calibration in; calibrate our own "
            ".safetensors weights (with their NAME.json card)"
        )
    return card_path_for(Path(model.descriptor.source))


def calibration_images(config_path: Path, count: int) -> list[Path]:
    """The config's validation images first, then `count` minus those, evenly spaced over the training images."""
    config = load_config(config_path)
    root = config.data.root
    held_out = [root / item for item in config.data.val_list][:count]
    resolved = {p.resolve() for p in held_out}
    training = [
        path
        for folder in config.data.train_dirs
        for path in find_images(root / folder)
        if path.resolve() not in resolved
    ]
    wanted = min(count - len(held_out), len(training))
    picked = [training[i * len(training) // wanted] for i in range(wanted)] if wanted > 0 else []
    if not held_out + picked:
        raise ConfigError(f"no calibration images found under {root}")
    return held_out + picked


def centre_crop(image: torch.Tensor, side: int, scale: int) -> torch.Tensor:
    """The centre `side`×`side` crop of a 3×H×W image (less where it is smaller), sides a multiple of `scale`."""
    h, w = image.shape[-2:]
    ch, cw = min(h, side), min(w, side)
    ch, cw = ch - ch % scale, cw - cw % scale
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[:, top : top + ch, left : left + cw]
