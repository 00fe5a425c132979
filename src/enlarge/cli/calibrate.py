"""`enlarge calibrate --model NAME|PATH`: measure a model's Y-PSNR loss in bf16 and record its default precision.

The images are the held-out validation list of a training config (default configs/lite.yaml), never a benchmark
set. The decision and the measurement go into the model card beside the weights (`default_precision`,
`extra["precision_calibration"]`); for a bundled model that is the card in the package's weights folder. Run it
again after each `enlarge export`, which writes a fresh card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from enlarge.engine.calibration import DEFAULT_MAX_LOSS_DB, CalibrationImage, PrecisionCalibration, calibrate
from enlarge.errors import ConfigError
from enlarge.models.card import ModelCard, card_path_for
from enlarge.models.registry import SPECS, bundled_weights, load_model
from enlarge.training.config import TrainConfig, load_config
from enlarge.training.validation_set import load_val_images
from enlarge.validation import replace

DEFAULT_CONFIG = Path("configs/lite.yaml")
RECORD_KEY = "precision_calibration"
# Folders of the standard benchmark sets (as `enlarge eval` scores them): calibrating on them would tune to the test.
BENCHMARK_FOLDERS = frozenset({"benchmark", "Set5", "Set14", "B100", "BSD100", "Urban100", "Manga109"})


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `calibrate` command."""
    parser = subparsers.add_parser(
        "calibrate",
        description="Render the validation images in fp32 and in bf16; bf16 becomes the model's default only if "
        f"its mean Y-PSNR loss is at most --max-loss dB (default {DEFAULT_MAX_LOSS_DB}) at every scale. The "
        "result is written into the model card.",
    )
    parser.add_argument("--model", required=True, metavar="NAME|PATH", help="a bundled model or a .safetensors file")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG,
        help="training config whose validation list, crop and scales to use (default %(default)s)",
    )
    parser.add_argument("--data", type=Path, metavar="DIR", help="folder the validation list is relative to")
    parser.add_argument("--val-list", nargs="+", metavar="IMAGE", help="validation images, relative to --data")
    parser.add_argument(
        "--max-loss", type=float, default=DEFAULT_MAX_LOSS_DB, metavar="DB",
        help="largest Y-PSNR loss that still makes bf16 the default (default %(default)g dB)",
    )
    parser.add_argument("--dry-run", action="store_true", help="measure and print, but leave the card unchanged")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Measure, print, and record the decision in the model card (unless --dry-run or there is no card)."""
    loaded = load_model(args.model)
    card_path = model_card_path(args.model)
    config = validation_config(args.config, args.data, args.val_list)
    images = [
        CalibrationImage(f"{image.name} x{scale}", lr, image.hr, scale)
        for image in load_val_images(config)
        for scale, lr in image.lr.items()
    ]
    result = calibrate(loaded, images, args.max_loss)
    print(json.dumps(result.record(), indent=2) if args.json else summary(loaded.descriptor.name, result))
    if args.dry_run:
        print("dry run: the model card is unchanged")
    elif card_path is None:
        print(f"not recorded: {args.model} has no model card (only our .safetensors weights carry one)")
    else:
        record(card_path, result)
        print(f"recorded default_precision={result.decision} in {card_path}")
    return 0


def model_card_path(model: str) -> Path | None:
    """The card that describes `model`: beside its bundled or given `.safetensors` weights; None if none."""
    if model in SPECS:
        weights = bundled_weights(SPECS[model])
        return card_path_for(weights) if weights is not None else None
    path = Path(model).expanduser()
    return card_path_for(path) if path.suffix == ".safetensors" else None


def validation_config(path: Path, data: Path | None, val_list: list[str] | None) -> TrainConfig:
    """The training config with --data / --val-list applied; ConfigError if a benchmark set would be used."""
    config = load_config(path)
    section = config.data
    if data is not None or val_list is not None:
        section = replace(
            section,
            f"{path} with --data / --val-list",
            data_root=str(data) if data is not None else section.data_root,
            val_list=list(val_list) if val_list is not None else section.val_list,
        )
    if not section.val_list:
        raise ConfigError(f"{path} has no data.val_list; pass --val-list")
    for item in section.val_list:
        parts = set((section.root / item).resolve().parts)
        if parts & BENCHMARK_FOLDERS:
            raise ConfigError(f"{item} is in a benchmark set; calibrate on held-out training images instead")
    return dataclasses.replace(config, data=section)


def record(card_path: Path, result: PrecisionCalibration) -> None:
    """Write the decision and its measurement into the card at `card_path`."""
    card = ModelCard.read(card_path)
    card.default_precision = result.decision
    card.extra[RECORD_KEY] = result.record()
    card.write(card_path)


def summary(name: str, result: PrecisionCalibration) -> str:
    """One line per scale, then the decision."""
    lines = [f"{name}: {result.renders} renders (validation image × scale)"]
    for scale, loss in result.loss_db.items():
        fp32, bf16 = result.psnr["fp32"][scale], result.psnr["bf16"][scale]
        lines.append(f"  {scale}: fp32 {fp32:.3f} dB, bf16 {bf16:.3f} dB, loss {loss:+.4f} dB")
    seconds = ", ".join(f"{mode} {s:.1f} s" for mode, s in result.seconds.items())
    lines.append(f"  render time: {seconds}")
    lines.append(f"default precision: {result.decision} (bf16 needs a loss <= {result.max_loss_db} dB at every scale)")
    return "\n".join(lines)
