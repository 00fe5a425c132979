"""Image-quality metrics of the SR literature: Y-PSNR, RGB-PSNR and SSIM on Y, computed as the published code does.

Inputs are RGB tensors in [0, 1], `3×H×W` or `B×3×H×W` (one score per call: a batch is pooled as one image).
Luma is MATLAB's `rgb2ycbcr` Y (ITU-R BT.601, studio swing) on the [0, 255] scale, left unrounded: this equals
LIIF's/EDSR's `calc_psnr`, which weighs the [0, 1] difference by (65.738, 129.057, 25.064)/256 — the same
coefficients as 65.481/255, 128.553/255, 24.966/255 to six digits — and uses a peak of 1, i.e. 255 on this scale.
Scores are computed in float64.
"""

from __future__ import annotations

import math

import torch

from enlarge.errors import ConfigError, SizeError

PEAK = 255.0  # the peak signal of PSNR and SSIM's dynamic range L: both work on the [0, 255] scale
Y_OFFSET = 16.0
Y_COEFFS = (65.481, 128.553, 24.966)  # BT.601 luma rows of MATLAB's rgb2ycbcr, for R, G, B in [0, 1]
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
METRICS = ("y", "rgb")  # PSNR on MATLAB luma, or on the three RGB channels


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """Luma of RGB in [0, 1] (`…×3×H×W`) as `…×H×W` on the [0, 255] scale, unrounded (MATLAB's `rgb2ycbcr` Y).

    Y = 16 + 65.481 R + 128.553 G + 24.966 B, so Y lies in [16, 235].
    """
    if img.dim() < 3 or img.shape[-3] != 3:
        raise SizeError(f"rgb_to_y needs a …×3×H×W RGB tensor, got shape {tuple(img.shape)}")
    coeffs = torch.tensor(Y_COEFFS, dtype=torch.float64, device=img.device)
    return Y_OFFSET + torch.einsum("...chw,c->...hw", img.to(torch.float64), coeffs)


def psnr(sr: torch.Tensor, hr: torch.Tensor, shave: int, metric: str = "y") -> float:
    """PSNR in dB of `sr` against `hr` (RGB in [0, 1]) after cutting `shave` pixels off every border.

    `metric="y"`: on MATLAB luma (the SR benchmark convention, shave = scale); `"rgb"`: on all three channels
    (DIV2K convention, shave = scale + 6). Peak 255 on the [0, 255] scale either way.
    """
    _check_pair(sr, hr, shave)
    if metric == "y":
        a, b = rgb_to_y(sr), rgb_to_y(hr)
    elif metric == "rgb":
        a, b = sr.to(torch.float64) * PEAK, hr.to(torch.float64) * PEAK
    else:
        raise ConfigError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    mse = (_shave(a, shave) - _shave(b, shave)).pow(2).mean().item()
    if mse == 0:
        return math.inf  # identical images
    return 10 * math.log10(PEAK**2 / mse)


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, shave: int) -> float:
    """SSIM (Wang et al. 2004) on MATLAB luma after shaving `shave` pixels, as their `ssim_index.m`.

    11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255; statistics over 'valid' windows only (no
    padding) and no automatic downsampling; the score is the mean of the SSIM map.
    """
    _check_pair(sr, hr, shave)
    a = _shave(rgb_to_y(sr), shave)
    b = _shave(rgb_to_y(hr), shave)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        size = "×".join(str(n) for n in a.shape[-2:])
        raise SizeError(f"SSIM needs at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels after shaving, got {size}")
    c1 = (SSIM_K1 * PEAK) ** 2
    c2 = (SSIM_K2 * PEAK) ** 2
    mu_a, mu_b, a2, b2, ab = _gaussian_filter(torch.stack([a, b, a * a, b * b, a * b]))
    var_a = a2 - mu_a**2
    var_b = b2 - mu_b**2
    cov = ab - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean().item()


def _gaussian_filter(x: torch.Tensor) -> torch.Tensor:
    """'Valid' filtering of `…×H×W` by MATLAB's `fspecial('gaussian', 11, 1.5)`, one 1-D pass per axis (it factors).

    Each pass is a product with a banded matrix: on CPU, much faster than a float64 `conv2d` or shifted sums.
    """
    return _gaussian_band(x.shape[-2], x.device) @ x @ _gaussian_band(x.shape[-1], x.device).T


def _gaussian_band(n: int, device: torch.device) -> torch.Tensor:
    """The (n-10)×n float64 matrix whose row i holds the normalised 11-tap Gaussian (σ = 1.5) at columns i..i+10."""
    r = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW - 1) / 2
    taps = torch.exp(-(r**2) / (2 * SSIM_SIGMA**2))
    taps = taps / taps.sum()
    rows = torch.arange(n - SSIM_WINDOW + 1, device=device)[:, None]
    band = torch.zeros(n - SSIM_WINDOW + 1, n, dtype=torch.float64, device=device)
    band[rows, rows + torch.arange(SSIM_WINDOW, device=device)] = taps
    return band


def _shave(x: torch.Tensor, shave: int) -> torch.Tensor:
    """`x` without `shave` pixels on each side of its last two axes."""
    if shave == 0:
        return x
    return x[..., shave:-shave, shave:-shave]


def _check_pair(sr: torch.Tensor, hr: torch.Tensor, shave: int) -> None:
    """Both images the same shape, and something left after shaving."""
    if sr.shape != hr.shape:
        raise SizeError(f"images differ in shape: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if shave < 0 or min(hr.shape[-2:]) <= 2 * shave:
        raise SizeError(f"cannot shave {shave} pixels off a {hr.shape[-2]}×{hr.shape[-1]} image")
