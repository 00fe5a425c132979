"""Export a training run as shippable weights: `NAME.safetensors` (fp32) plus the `NAME.json` model card.

The card records how to rebuild the module, its size and compute cost, the scales it was trained on, and where
the training images came from with their licence terms, so the weights carry their provenance with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from safetensors.torch import save as safetensors_bytes
from torch import nn

from enlarge.errors import ConfigError, ModelError
from enlarge.fileutil import atomic_write_bytes
from enlarge.models.card import CARD_SUFFIX, ROBUST_TWIN, ModelCard, card_path_for
from enlarge.models.macs import count_macs
from enlarge.models.registry import SPECS, WEIGHTS_PACKAGE, build, load_state_strict, parameter_count
from enlarge.training.checkpoint import BEST, LAST, RunRecord, load_checkpoint, load_record, load_state
from enlarge.training.config import config_from_dict

WHICH = ("best", "last")
DEFAULT_PRECISION = "fp32"  # safe everywhere; a calibration tool may record a faster choice in the card
# Card entries that a re-export keeps from the card it replaces: declarations about other models (the robust
# twin and its measured threshold), which no step of `make weights` re-measures.
KEPT_ON_EXPORT = (ROBUST_TWIN,)


@dataclass(frozen=True)
class DataLicence:
    """Licence terms of a training folder, and whether they restrict the weights to non-commercial use."""

    note: str
    non_commercial: bool = False


DATA_LICENCES = {
    "BSD400": DataLicence("BSDS500 images (Berkeley): non-commercial research use only", non_commercial=True),
    "Kodak24": DataLicence("Kodak Lossless True Color Image Suite: released for unrestricted use"),
    "WikiPhotos": DataLicence(
        "Wikipedia photos: mostly CC BY / CC BY-SA, attribution required (see WikiPhotos/ATTRIBUTION_README.md)"
    ),
}
UNKNOWN_LICENCE = DataLicence("licence unknown: check the source of these images before redistributing")
LICENSE_RESTRICTED = "weights for non-commercial research use (trained on images with non-commercial terms)"
LICENSE_OPEN = "weights under the package's MIT licence; see training.data for the image licences"


@dataclass
class ExportResult:
    """The files written and the card they carry."""

    weights: Path
    card_path: Path
    card: ModelCard


def default_weights_dir() -> Path:
    """The package's own weights folder: what `create(name)` loads and the wheel ships."""
    return Path(str(resources.files(WEIGHTS_PACKAGE)))


def export_run(run_dir: Path, name: str, out_dir: Path | None = None, which: str = "best") -> ExportResult:
    """Write `NAME.safetensors` + `NAME.json` from the `which` (best/last) weights of the run in `run_dir`."""
    if which not in WHICH:
        raise ConfigError(f"the weights to export must be one of {', '.join(WHICH)}, not {which!r}", setting="which")
    run_dir = Path(run_dir)
    record = load_record(run_dir)
    config = config_from_dict(record.config, source=str(run_dir))
    if which == "best":
        if not (run_dir / BEST).exists():
            raise ConfigError(
                f"{run_dir} has no {BEST} (no validation ran yet); export the last weights instead", setting="which"
            )
        state = load_state(run_dir / BEST)
    else:
        state = load_checkpoint(run_dir / LAST).model
    arch, model_config = config.model.resolved()
    module = build(arch, model_config)
    load_state_strict(module, state, str(run_dir / (BEST if which == "best" else LAST)))
    module.eval()

    description = (
        SPECS[config.model.name].description if config.model.name in SPECS else f"{arch} model trained by enlarge train"
    )
    card = ModelCard(
        name=name,
        arch=arch,
        config=model_config,
        description=description,
        parameters=parameter_count(module),
        macs_per_output_pixel=count_macs(module),
        trained_scales=(config.scale_min, config.scale_max),
        default_precision=DEFAULT_PRECISION,
        training=training_record(record, config.data.train_dirs, config.data.data_root, which),
        license=weights_licence(config.data.train_dirs),
    )
    out_dir = Path(out_dir) if out_dir is not None else default_weights_dir()
    card.extra.update(kept_entries(out_dir / f"{name}{CARD_SUFFIX}"))
    return write_model(module, card, out_dir)


def kept_entries(card_path: Path) -> dict[str, Any]:
    """The `KEPT_ON_EXPORT` entries of the card at `card_path`; none if there is no readable card there."""
    try:
        previous = ModelCard.read(card_path)
    except ModelError:
        return {}
    return {key: previous.extra[key] for key in KEPT_ON_EXPORT if key in previous.extra}


def write_model(module: nn.Module, card: ModelCard, out_dir: Path) -> ExportResult:
    """`NAME.safetensors` (fp32 weights of `module`) and `NAME.json` (the card, NAME its name) in `out_dir`,
    each written atomically."""
    if not out_dir.is_dir():
        raise ConfigError(f"output folder {out_dir} does not exist")
    weights = out_dir / f"{card.name}.safetensors"
    tensors = {k: v.float().contiguous() for k, v in module.state_dict().items()}
    atomic_write_bytes(weights, safetensors_bytes(tensors, metadata={"format": "pt", "name": card.name}))
    card_path = card_path_for(weights)
    card.write(card_path)
    return ExportResult(weights, card_path, card)


def licence_of(folder: str) -> DataLicence:
    """The licence terms of a training folder, by its last path component."""
    return DATA_LICENCES.get(Path(folder).name, UNKNOWN_LICENCE)


def weights_licence(train_dirs: list[str]) -> str:
    """The licence line of weights trained on `train_dirs`: restricted if any folder's terms are non-commercial."""
    return LICENSE_RESTRICTED if any(licence_of(d).non_commercial for d in train_dirs) else LICENSE_OPEN


def training_record(record: RunRecord, train_dirs: list[str], data_root: str, which: str) -> dict[str, Any]:
    """The card's `training` section: data and licences, steps, wall time, precision, validation."""
    return {
        "data": [{"folder": d, "licence": licence_of(d).note} for d in train_dirs],
        "data_root": data_root,
        "steps": record.step,
        "wall_time_s": round(record.elapsed_s, 1),
        "precision": record.precision,
        "threads": record.threads,
        "weights": which,
        "best_val_psnr_y": record.best_psnr,
        "best_step": record.best_step,
        "config_hash": record.config_hash,
    }
