"""The degradation primitives and the random training mix: sizes, 8-bit values, determinism, each effect real."""

import numpy as np
import pytest
import torch

from enlarge import degradations as dg
from enlarge.resize import imresize


def _image(size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=g), size=(size, size),
                                             mode="bicubic", align_corners=False)[0]
    return dg.quantize(smooth)


def _on_grid(x: torch.Tensor) -> bool:
    return bool(torch.allclose(x * dg.LEVELS, (x * dg.LEVELS).round(), atol=1e-4)) and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("kernel", dg.KERNELS)
def test_downscale_kernels_give_size_and_levels(kernel):
    lr = dg.downscale(_image(), (21, 16), kernel)
    assert lr.shape == (3, 21, 16) and _on_grid(lr)


def test_bicubic_kernel_is_the_benchmark_protocol():
    hr = _image()
    assert torch.equal(dg.downscale(hr, (16, 16), "bicubic"), dg.quantize(imresize(hr, output_size=(16, 16))))


def test_nearest_keeps_input_values_and_area_averages():
    hr = _image()
    near = dg.downscale(hr, (16, 16), "nearest")
    values = set((hr * 255).round().flatten().tolist())
    assert set((near * 255).round().flatten().tolist()) <= values
    area = dg.downscale(hr, (16, 16), "area")
    assert torch.allclose(area, dg.quantize(torch.nn.functional.avg_pool2d(hr[None], 4)[0]), atol=1 / 255 + 1e-6)


def test_jpeg_roundtrip_is_lossy_and_quality_ordered():
    hr = _image(seed=1) * 0.5 + torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2)) * 0.5
    hr = dg.quantize(hr)
    err = {q: (dg.jpeg_roundtrip(hr, q) - hr).abs().mean().item() for q in (30, 90)}
    assert err[30] > err[90] > 0
    assert _on_grid(dg.jpeg_roundtrip(hr, 50, dg.SUBSAMPLING_444))


def test_noise_and_blur_change_the_image_by_their_strength():
    x = _image()
    rng = np.random.default_rng(0)
    small = (dg.gaussian_noise(x, 1.0, rng) - x).std().item()
    large = (dg.gaussian_noise(x, 8.0, rng) - x).std().item()
    assert small < large and abs(large * 255 - 8) < 1.5
    shot = dg.poisson_noise(x, 100.0, np.random.default_rng(0))
    assert _on_grid(shot) and (shot - x).abs().mean() > 0
    blurred = dg.gaussian_blur(x, 1.0)
    assert blurred.shape == x.shape and (blurred - x).abs().mean() > 0
    assert abs(blurred.mean().item() - x.mean().item()) < 2 / 255


def test_random_lr_is_deterministic_from_the_generator():
    hr = _image(96)
    mix = dg.DegradationMix()
    a = [dg.random_lr(hr, (24, 24), mix, np.random.default_rng(i)) for i in range(12)]
    b = [dg.random_lr(hr, (24, 24), mix, np.random.default_rng(i)) for i in range(12)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(x.shape == (3, 24, 24) and _on_grid(x) for x in a)
    assert len({x.sum().item() for x in a}) > 6  # the mix really varies


def test_clean_mix_is_plain_bicubic():
    hr = _image()
    mix = dg.DegradationMix(clean=1.0)
    assert torch.equal(dg.random_lr(hr, (16, 16), mix, np.random.default_rng(3)), dg.downscale(hr, (16, 16), "bicubic"))


@pytest.mark.parametrize("bad", [{"clean": 1.5}, {"kernel_weights": (1.0, 0.0)}, {"jpeg_quality": (50, 120)},
                                 {"noise_sigma": (5.0, 1.0)}])
def test_mix_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        dg.DegradationMix(**bad)
