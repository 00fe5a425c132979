"""How real low-resolution photos are made, as functions on 8-bit-level float images.

Two users: training (`random_lr`, every choice drawn from the sample's generator, so a batch stays a pure
function of (seed, step, index)), and evaluation (the fixed primitives: a JPEG round trip at one quality, one
noise level, one downscaling kernel). Images are 3×H×W float tensors in [0, 1]; every function returns values
on the 8-bit grid, as a decoded file would be.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from enlarge.resize import imresize

LEVELS = 255.0
# Downscaling kernels: MATLAB bicubic with antialiasing (the benchmark protocol), box averaging (area), and two
# without antialiasing, as thumbnails and many tools make them: bilinear and nearest (point sampling).
KERNELS = ("bicubic", "area", "bilinear", "nearest")
# Pillow's `subsampling` values: 4:4:4 keeps full chroma, 4:2:0 halves it both ways (Pillow's JPEG default).
SUBSAMPLING_444 = 0
SUBSAMPLING_420 = 2
BLUR_RADIUS_SIGMAS = 3  # a Gaussian kernel covers ±3σ
ORDER_SWAP_CHANCE = 0.5  # blur then noise, or noise then blur


def quantize(image: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8-bit levels (kept as float)."""
    return (image.clamp(0, 1) * LEVELS).round() / LEVELS


def downscale(image: torch.Tensor, size: tuple[int, int], kernel: str) -> torch.Tensor:
    """`image` shrunk to `size` (h, w) with one of `KERNELS`, quantized to 8 bits."""
    if kernel == "bicubic":
        return quantize(imresize(image, output_size=size))
    batch = image.unsqueeze(0)
    if kernel == "area":
        out = F.interpolate(batch, size=size, mode="area")
    elif kernel == "bilinear":
        out = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=False)
    elif kernel == "nearest":
        out = F.interpolate(batch, size=size, mode="nearest-exact")
    else:
        raise ValueError(f"unknown downscaling kernel {kernel!r}; known: {', '.join(KERNELS)}")
    return quantize(out[0])


def jpeg_roundtrip(image: torch.Tensor, quality: int, subsampling: int = SUBSAMPLING_420) -> torch.Tensor:
    """Encode as a baseline JPEG at `quality` with Pillow (libjpeg) and decode again."""
    pixels = (image.clamp(0, 1) * LEVELS).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        array = np.asarray(decoded.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / LEVELS


def gaussian_noise(image: torch.Tensor, sigma_levels: float, rng: np.random.Generator) -> torch.Tensor:
    """Add zero-mean Gaussian noise of `sigma_levels` (in 8-bit levels), drawn from `rng`; quantized."""
    noise = torch.from_numpy(rng.standard_normal(image.shape).astype(np.float32))
    return quantize(image + noise * (sigma_levels / LEVELS))


def poisson_noise(image: torch.Tensor, peak: float, rng: np.random.Generator) -> torch.Tensor:
    """Shot noise: each value becomes Poisson(value·peak)/peak, as a sensor that counts `peak` photons at white."""
    counts = rng.poisson(image.clamp(0, 1).numpy().astype(np.float64) * peak)
    return quantize(torch.from_numpy((counts / peak).astype(np.float32)))


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of `sigma` pixels with edge replication; quantized."""
    radius = max(1, int(np.ceil(BLUR_RADIUS_SIGMAS * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = image.shape[0]
    x = F.pad(image.unsqueeze(0), (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return quantize(x[0])


@dataclass(frozen=True)
class DegradationMix:
    """How often and how strongly `random_lr` degrades a training sample (a config section of training).

    `kernel_weights` are relative chances of the `KERNELS`, in order. With chance `clean`, a sample is the plain
    benchmark protocol (bicubic, nothing else), so a robust model keeps its quality on clean input.
    """

    clean: float = 0.2
    kernel_weights: tuple[float, float, float, float] = (0.4, 0.2, 0.2, 0.2)
    blur: float = 0.1
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    noise: float = 0.3
    noise_sigma: tuple[float, float] = (1.0, 8.0)
    poisson_share: float = 0.3  # of the noisy samples, how many get shot noise instead of Gaussian
    poisson_peak: tuple[float, float] = (100.0, 1000.0)
    jpeg: float = 0.7
    jpeg_quality: tuple[int, int] = (30, 95)
    jpeg_420: float = 0.5  # of the JPEG samples, how many subsample chroma 4:2:0
    # Chance that a sample's scale is a whole factor (≥ 2): thumbnails are often made at ½, ⅓, ¼, and point
    # sampling by a whole factor has one fixed phase (×2: a quarter LR pixel off the centres) a model can learn to
    # undo, which the scattered phases of non-integer factors never show it. 0 draws nothing (runs before it).
    integer_scale: float = 0.0

    def __post_init__(self) -> None:
        chances = {"clean": self.clean, "blur": self.blur, "noise": self.noise, "poisson_share": self.poisson_share,
                   "jpeg": self.jpeg, "jpeg_420": self.jpeg_420, "integer_scale": self.integer_scale}
        for name, value in chances.items():
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be a chance in [0, 1], got {value}")
        if len(self.kernel_weights) != len(KERNELS) or min(self.kernel_weights) < 0 or sum(self.kernel_weights) <= 0:
            raise ValueError(f"kernel_weights must be {len(KERNELS)} non-negative weights ({', '.join(KERNELS)})")
        ranges = {"blur_sigma": self.blur_sigma, "noise_sigma": self.noise_sigma, "poisson_peak": self.poisson_peak,
                  "jpeg_quality": self.jpeg_quality}
        for name, (low, high) in ranges.items():
            if not 0 < low <= high:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {low}..{high}")
        if self.jpeg_quality[1] > 100:
            raise ValueError(f"jpeg_quality must lie in 1..100, got {self.jpeg_quality}")


def random_lr(hr: torch.Tensor, size: tuple[int, int], mix: DegradationMix, rng: np.random.Generator) -> torch.Tensor:
    """A degraded 8-bit LR of `size` made from the HR crop `hr`: a random kernel, then blur and noise in random
    order, then JPEG, each with its chance and a random strength, all drawn from `rng` in a fixed sequence."""
    if rng.random() < mix.clean:
        return downscale(hr, size, "bicubic")
    weights = np.asarray(mix.kernel_weights, dtype=np.float64)
    lr = downscale(hr, size, KERNELS[rng.choice(len(KERNELS), p=weights / weights.sum())])
    steps = []
    if rng.random() < mix.blur:
        sigma = rng.uniform(*mix.blur_sigma)
        steps.append(lambda x: gaussian_blur(x, sigma))
    if rng.random() < mix.noise:
        if rng.random() < mix.poisson_share:
            peak = rng.uniform(*mix.poisson_peak)
            steps.append(lambda x: poisson_noise(x, peak, rng))
        else:
            sigma_levels = rng.uniform(*mix.noise_sigma)
            steps.append(lambda x: gaussian_noise(x, sigma_levels, rng))
    if len(steps) > 1 and rng.random() < ORDER_SWAP_CHANCE:
        steps.reverse()
    for step in steps:
        lr = step(lr)
    if rng.random() < mix.jpeg:
        low, high = mix.jpeg_quality
        quality = int(rng.integers(low, high + 1))
        subsampling = SUBSAMPLING_420 if rng.random() < mix.jpeg_420 else SUBSAMPLING_444
        lr = jpeg_roundtrip(lr, quality, subsampling)
    return lr
