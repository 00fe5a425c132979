"""The held-out validation set of a run and its scores: centre crops of the config's `val_list` with their bicubic
(and optionally JPEG) LR, scored in Y-PSNR by the engine's own renderer, so validation measures what users get.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from enlarge.degradations import jpeg_roundtrip
from enlarge.engine.render import render
from enlarge.errors import ConfigError
from enlarge.imagefolders import read_rgb8
from enlarge.metrics import psnr
from enlarge.models.registry import LoadedModel, build, describe
from enlarge.resize import imresize
from enlarge.training.config import TrainConfig
from enlarge.training.data import LEVELS
from enlarge.training.warm_start import initial_weights


@dataclass
class ValImage:
    """A held-out image: its HR centre crop and the matching bicubic LR at each validation scale."""

    name: str
    hr: torch.Tensor  # 1×3×C×C
    lr: dict[int, torch.Tensor]  # scale → 1×3×(C/s)×(C/s)


def load_val_images(config: TrainConfig) -> list[ValImage]:
    """Centre crops (`val_crop`²) of the held-out images with their 8-bit bicubic LR at each validation scale."""
    result = []
    crop = config.val_crop
    for item in config.data.val_list:
        path = config.data.root / item
        if not path.is_file():
            raise ConfigError(f"validation image {path} not found")
        image = read_rgb8(path)
        h, w = image.shape[:2]
        if min(h, w) < crop:
            raise ConfigError(f"validation image {path} is smaller than val_crop ({crop})")
        top, left = (h - crop) // 2, (w - crop) // 2
        hr = torch.from_numpy(image[top : top + crop, left : left + crop].copy()).permute(2, 0, 1).float() / LEVELS
        lr = {s: imresize(hr, output_size=(crop // s, crop // s), quantize=True).clamp(0, 1).unsqueeze(0)
              for s in config.val_scales}
        result.append(ValImage(item, hr.unsqueeze(0), lr))
    return result


def jpeg_val_images(images: list[ValImage], quality: int) -> list[ValImage]:
    """The same validation images with every LR passed through a JPEG round trip at `quality` (4:2:0)."""
    return [ValImage(f"{image.name}@jpeg{quality}", image.hr,
                     {s: jpeg_roundtrip(lr[0], quality).unsqueeze(0) for s, lr in image.lr.items()})
            for image in images]


def validation_sets(config: TrainConfig) -> dict[str, list[ValImage]]:
    """The run's validation sets: "" the clean held-out images, and with `val_jpeg` "jpegQ" the same through JPEG."""
    images = load_val_images(config)
    sets = {"": images}
    if config.val_jpeg is not None and images:
        sets[f"jpeg{config.val_jpeg}"] = jpeg_val_images(images, config.val_jpeg)
    return sets


def mean_score(scores: Mapping[Any, float]) -> float:
    """The mean of validation scores (over scales, and sets): the one number a run is judged by."""
    return sum(scores.values()) / len(scores)


def validation_scores(model: LoadedModel, sets: dict[str, list[ValImage]]) -> dict[str, float]:
    """Mean Y-PSNR per validation set and scale, keyed "x2" for the clean set and "x2 jpeg75" for others."""
    scores = {}
    for label, images in sets.items():
        for scale, value in validate(model, images).items():
            scores[f"x{scale}{' ' + label if label else ''}"] = value
    return scores


def validate(model: LoadedModel, images: list[ValImage]) -> dict[int, float]:
    """Mean Y-PSNR (shave = scale) over `images` at each scale, rendered by the engine in fp32, eval mode."""
    model.module.eval()
    scales = sorted(images[0].lr) if images else []
    scores = {}
    for scale in scales:
        values = []
        for image in images:
            sr = render(model, image.lr[scale], tuple(image.hr.shape[-2:])).clamp(0, 1)
            values.append(psnr(sr, image.hr, shave=scale, metric="y"))
        scores[scale] = sum(values) / len(values)
    return scores


def init_from_score(config: TrainConfig) -> float | None:
    """Mean validation score (clean and JPEG sets, as the run validates) of the run's `init_from` weights, grown
    into the run's network if smaller: where the run started. None for a run from scratch."""
    if config.init_from is None:
        return None
    arch, model_config = config.model.resolved()
    module = build(arch, model_config)
    module.load_state_dict(initial_weights(config.init_from, module))
    scores = validation_scores(LoadedModel(module.eval(), describe("start", arch, model_config, module,
                                                                   has_weights=True)), validation_sets(config))
    return mean_score(scores)
