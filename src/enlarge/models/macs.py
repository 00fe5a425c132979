"""Compute cost of a model: multiply-accumulates per output pixel, counted on a real forward pass.

Forward hooks on every Conv2d and Linear add up their MACs while the model enlarges a fixed-size input; the total
(encoder once, decoder for every query) divided by the output pixels gives a figure that compares models of any
architecture. Element-wise work (activations, the ensemble's weighting, a bicubic skip) is not counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from enlarge.coords import make_coord

MAC_INPUT_SIZE = 64  # LR side of the probe image
MAC_SCALES = (2, 3, 4)
MAC_CHUNK = 16384  # queries per decoder call, to bound memory at large scales


def layer_macs(layer: nn.Module, output: torch.Tensor) -> int:
    """MACs of one Conv2d or Linear call that produced `output`."""
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return output.numel() * (layer.in_channels // layer.groups) * kh * kw
    if isinstance(layer, nn.Linear):
        return output.numel() * layer.in_features
    return 0


def count_macs(
    module: nn.Module, size: int = MAC_INPUT_SIZE, scales: Sequence[int] = MAC_SCALES
) -> dict[str, float]:
    """MACs per output pixel of `module` (encode/query interface) enlarging a `size`² input, by scale: {"x2": …}."""
    total = 0

    def hook(layer: nn.Module, inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        total += layer_macs(layer, output)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = module.training
    module.eval()
    result = {}
    try:
        with torch.inference_mode():
            lr = torch.full((1, 3, size, size), 0.5)
            for scale in scales:
                total = 0
                out = size * scale
                feats = module.encode(lr)
                coord = make_coord((out, out)).unsqueeze(0)
                cell = torch.full_like(coord, 2.0 / out)
                for start in range(0, coord.shape[1], MAC_CHUNK):
                    module.query(feats, coord[:, start : start + MAC_CHUNK], cell[:, start : start + MAC_CHUNK])
                result[f"x{scale}"] = total / (out * out)
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return result
