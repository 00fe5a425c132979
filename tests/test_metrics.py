"""Y conversion, PSNR (Y and RGB, shave) and SSIM against hand-computed values and an independent implementation."""

from __future__ import annotations

import math

import pytest
import torch

from enlarge.errors import ConfigError, SizeError
from enlarge.metrics import psnr, rgb_to_y, ssim_y

# LIIF/EDSR weigh the [0, 1] RGB difference by these over 256 (their calc_psnr) and use a peak of 1.
LIIF_GRAY_COEFFS = (65.738, 129.057, 25.064)


def gray(value: float, size: int = 24) -> torch.Tensor:
    """A flat 3×size×size image with R = G = B = value."""
    return torch.full((3, size, size), value, dtype=torch.float64)


def test_rgb_to_y_matlab_values() -> None:
    colours = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    y = rgb_to_y(colours.view(5, 3, 1, 1)).flatten()
    expected = torch.tensor([16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], dtype=torch.float64)
    assert torch.allclose(y, expected, atol=1e-9)
    assert rgb_to_y(torch.rand(2, 3, 5, 4)).shape == (2, 5, 4)


def test_y_difference_matches_liif_coefficients() -> None:
    torch.manual_seed(0)
    a, b = torch.rand(3, 8, 8, dtype=torch.float64), torch.rand(3, 8, 8, dtype=torch.float64)
    ours = (rgb_to_y(a) - rgb_to_y(b)) / 255
    liif = ((a - b) * torch.tensor(LIIF_GRAY_COEFFS, dtype=torch.float64).view(3, 1, 1) / 256).sum(0)
    assert torch.allclose(ours, liif, atol=1e-5)


def test_psnr_known_errors() -> None:
    # Gray levels: Y = 16 + 219·v, so a gray offset of 10/219 is exactly 10 Y levels: MSE 100.
    assert psnr(gray(0.5), gray(0.5 + 10 / 219), shave=2) == pytest.approx(10 * math.log10(255**2 / 100))
    # One 8-bit level on every RGB channel: MSE 1 on the [0, 255] scale.
    assert psnr(gray(0.5), gray(0.5 + 1 / 255), shave=8, metric="rgb") == pytest.approx(10 * math.log10(255**2))
    assert psnr(gray(0.3), gray(0.3), shave=2) == math.inf


def test_psnr_shave_ignores_borders() -> None:
    hr = gray(0.5)
    sr = hr.clone()
    sr[:, :3, :] = 0.0  # damage only the top three rows
    assert psnr(sr, hr, shave=3) == math.inf
    assert math.isfinite(psnr(sr, hr, shave=2))
    assert psnr(sr.unsqueeze(0), hr.unsqueeze(0), shave=3) == math.inf  # batched input works the same


def test_ssim_identical_and_flat_images() -> None:
    torch.manual_seed(1)
    image = torch.rand(3, 32, 32, dtype=torch.float64)
    assert ssim_y(image, image, shave=2) == pytest.approx(1.0)
    # Flat images have zero variance, so SSIM is the luminance term: (2·16·235 + C1)/(16² + 235² + C1), C1 = 2.55².
    c1 = (0.01 * 255) ** 2
    assert ssim_y(gray(0.0), gray(1.0), shave=0) == pytest.approx((2 * 16 * 235 + c1) / (16**2 + 235**2 + c1))


def test_ssim_matches_scikit_image() -> None:
    skimage_metrics = pytest.importorskip("skimage.metrics")
    torch.manual_seed(2)
    hr = torch.rand(3, 40, 36, dtype=torch.float64)
    sr = (hr + 0.1 * torch.randn_like(hr)).clamp(0, 1)
    theirs = skimage_metrics.structural_similarity(
        rgb_to_y(sr).numpy(), rgb_to_y(hr).numpy(), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255,
    )
    assert ssim_y(sr, hr, shave=0) == pytest.approx(theirs, abs=1e-9)
    shaved = skimage_metrics.structural_similarity(
        rgb_to_y(sr)[4:-4, 4:-4].numpy(), rgb_to_y(hr)[4:-4, 4:-4].numpy(), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255,
    )
    assert ssim_y(sr, hr, shave=4) == pytest.approx(shaved, abs=1e-9)


def test_metric_errors() -> None:
    with pytest.raises(SizeError):
        psnr(gray(0.5, 24), gray(0.5, 20), shave=2)
    with pytest.raises(SizeError):
        psnr(gray(0.5, 8), gray(0.5, 8), shave=4)
    with pytest.raises(SizeError):
        ssim_y(gray(0.5, 20), gray(0.5, 20), shave=5)  # 10×10 left: smaller than the 11×11 window
    with pytest.raises(SizeError):
        rgb_to_y(torch.zeros(4, 5, 5))
    with pytest.raises(ConfigError):
        psnr(gray(0.5), gray(0.5), shave=2, metric="lab")
