"""MATLAB-faithful bicubic imresize: kernel, hand-worked 1-D cases, borders, sizes, quantisation, numpy wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from enlarge.errors import SizeError
from enlarge.resize import cubic, imresize, imresize_np

# Keys' kernel (a = -0.5) at the quarter offsets that x2 enlargement and x1/2 shrinking use:
# |x| = 0.25: 1.5·0.015625 − 2.5·0.0625 + 1 = 0.8671875
# |x| = 0.75: 1.5·0.421875 − 2.5·0.5625 + 1 = 0.2265625
# |x| = 1.25: −0.5·1.953125 + 2.5·1.5625 − 5 + 2 = −0.0703125
# |x| = 1.75: −0.5·5.359375 + 2.5·3.0625 − 7 + 2 = −0.0234375
K025, K075, K125, K175 = 0.8671875, 0.2265625, -0.0703125, -0.0234375


def row(values: list[float]) -> torch.Tensor:
    """A 1-D signal as a 1×1×n image; resized to height 1 only its width changes (height scale 1 is the identity)."""
    return torch.tensor(values, dtype=torch.float64).view(1, 1, -1)


def test_cubic_kernel_values() -> None:
    x = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, -0.5, -1.5])
    expected = torch.tensor([1.0, K025, 0.5625, K075, 0.0, K125, -0.0625, K175, 0.0, 0.0, 0.5625, -0.0625])
    assert torch.equal(cubic(x), expected)


def test_enlarge_x2_ramp_hand_worked() -> None:
    # Scale 2: output i (1-based) samples u = i/2 + 0.25. Output 1: u = 0.75, taps at input 0, 1, 2, 3 (1-based)
    # at distances 0.75, −0.25, −1.25, −2.25 and 1.75 for input −1 → weights K075, K025, K125, 0 and K175.
    # Symmetric padding maps input 0 → 1 and −1 → 2, so out1 = (K075 + K025)·x1 + (K175 + K125)·x2.
    # Output 2: u = 1.25, inputs 0, 1, 2, 3 with weights K125, K025, K075, K175:
    # out2 = (K125 + K025)·x1 + K075·x2 + K175·x3.
    x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    out = imresize(row(x), output_size=(1, 16)).flatten()
    assert out.shape == (16,)
    # −0.09375: the mirror bends the ramp at the border
    assert out[0].item() == pytest.approx((K075 + K025) * 0 + (K175 + K125) * 1)
    assert out[1].item() == pytest.approx(K075 * 1 + K175 * 2)  # 0.1796875
    # Away from the borders the kernel reproduces a ramp exactly: output i lands on u − 1 (ramp value at u).
    interior = torch.arange(4, 14, dtype=torch.float64)  # outputs 4..13 use only inputs 1..8
    assert torch.allclose(out[3:13], interior / 2 + 0.25 - 1, atol=1e-12)
    # The right border mirrors the same way: out16 = (K075 + K025)·x8 + (K175 + K125)·x7.
    assert out[15].item() == pytest.approx((K075 + K025) * 7 + (K175 + K125) * 6)


def test_shrink_half_impulse_hand_worked() -> None:
    # Scale 1/2 (antialiasing): the kernel becomes 0.5·cubic(x/2), 8 pixels wide; output j samples u = 2j − 0.5.
    # An impulse at input 8 reaches output j with weight 0.5·cubic((2j − 8.5)/2) = 0.5·cubic(j − 4.25):
    # j = 3: 0.5·K125, j = 4: 0.5·K025, j = 5: 0.5·K075, j = 6: 0.5·K175, others 0 (weights already sum to 1).
    x = [0.0] * 16
    x[7] = 1.0
    out = imresize(row(x), output_size=(1, 8)).flatten()
    expected = torch.tensor([0, 0, K125, K025, K075, K175, 0, 0], dtype=torch.float64) / 2
    assert torch.allclose(out, expected, atol=1e-15)


def test_shrink_half_symmetric_border() -> None:
    # Output 1 samples u = 1.5 with taps at inputs −3..6; the weights at inputs −2..5 are
    # 0.5·(K175, K125, K075, K025, K025, K075, K125, K175). Mirroring sends input 0 → 1 (and −1 → 2, −2 → 3),
    # so an impulse at input 1 gets 0.5·(K075 + K025) = 0.546875 (replicate padding would give 0.5).
    # Output 2 samples u = 3.5: input 1 carries 0.5·K125 and input 0 (→ 1) 0.5·K175: −0.046875.
    x = [1.0] + [0.0] * 7
    out = imresize(row(x), output_size=(1, 4)).flatten()
    assert out[0].item() == pytest.approx(0.546875)
    assert out[1].item() == pytest.approx(-0.046875)
    assert out[2:].abs().max().item() < 1e-15


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.37, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
def test_constant_image_stays_constant(scale: float) -> None:
    image = torch.full((2, 3, 17, 23), 0.625, dtype=torch.float64)
    out = imresize(image, scale=scale)
    assert torch.allclose(out, torch.full_like(out, 0.625), atol=1e-12)


def test_output_size_is_ceil_of_size_times_scale() -> None:
    image = torch.zeros(3, 10, 7)
    assert imresize(image, scale=1 / 3).shape == (3, 4, 3)
    assert imresize(image, scale=2.5).shape == (3, 25, 18)
    assert imresize(image, output_size=(5, 9)).shape == (3, 5, 9)


def test_scale_one_is_identity_and_dtype_kept() -> None:
    image = torch.rand(1, 3, 9, 8)
    out = imresize(image, scale=1.0)
    assert out.dtype == torch.float32
    assert torch.equal(out, image)


def test_separable_and_batched() -> None:
    image = torch.rand(2, 3, 12, 10, dtype=torch.float64)
    out = imresize(image, output_size=(7, 25))
    by_height = imresize(image, output_size=(7, 10))
    assert torch.allclose(out, imresize(by_height, output_size=(7, 25)), atol=1e-12)
    assert torch.allclose(out[1, 2], imresize(image[1, 2], output_size=(7, 25)), atol=1e-12)


def test_quantize_rounds_between_passes_in_matlab_order() -> None:
    # MATLAB resizes the axis with the smaller scale first (height here: 7/20 < 13/20) and, on uint8, rounds after
    # each pass. Doing the two passes one at a time in that order must give the same image; the other order must not.
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 20, 20)).double() / 255
    out = imresize(image, output_size=(7, 13), quantize=True)
    height_first = imresize(imresize(image, output_size=(7, 20), quantize=True), output_size=(7, 13), quantize=True)
    width_first = imresize(imresize(image, output_size=(20, 13), quantize=True), output_size=(7, 13), quantize=True)
    assert torch.equal(out, height_first)
    assert not torch.equal(out, width_first)
    assert torch.equal(out * 255, (out * 255).round())


def test_interior_matches_pillow_float_bicubic() -> None:
    # Pillow's BICUBIC is the same a = −0.5 kernel, stretched when shrinking, on the same pixel-centre grid, but it
    # renormalises the kernel at the borders instead of mirroring: equal inside, different near the edges.
    rng = np.random.default_rng(0)
    x = rng.random((64, 64)).astype(np.float32)
    for size, border in ((32, 4), (128, 6)):
        theirs = np.asarray(Image.fromarray(x, "F").resize((size, size), Image.BICUBIC), dtype=np.float64)
        ours = imresize(torch.from_numpy(x).double()[None], output_size=(size, size))[0].numpy()
        assert np.abs(ours - theirs)[border:-border, border:-border].max() < 1e-5
        assert np.abs(ours - theirs).mean() < 5e-3


def test_imresize_np_follows_matlab_class_rule() -> None:
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, size=(15, 12, 3), dtype=np.uint8)
    out = imresize_np(u8, scale=0.5)
    assert out.dtype == np.uint8 and out.shape == (8, 6, 3)
    expected = imresize(torch.from_numpy(u8).permute(2, 0, 1).double() / 255, scale=0.5, quantize=True)
    assert np.array_equal(out, (expected * 255).round().permute(1, 2, 0).numpy().astype(np.uint8))
    gray = rng.random((6, 5))
    out_gray = imresize_np(gray, output_size=(12, 10))
    assert out_gray.dtype == np.float64 and out_gray.shape == (12, 10)
    assert np.allclose(out_gray, imresize(torch.from_numpy(gray)[None], output_size=(12, 10))[0].numpy())


def test_invalid_requests_raise_size_error() -> None:
    image = torch.zeros(3, 4, 4)
    with pytest.raises(SizeError):
        imresize(image)
    with pytest.raises(SizeError):
        imresize(image, output_size=(2, 2), scale=0.5)
    with pytest.raises(SizeError):
        imresize(image, scale=0.0)
    with pytest.raises(SizeError):
        imresize(image, scale=float("nan"))
    with pytest.raises(SizeError):
        imresize(image, output_size=(0, 3))
    with pytest.raises(SizeError):
        imresize(torch.zeros(3, 4, 4, dtype=torch.uint8), scale=2.0)
    with pytest.raises(SizeError):
        imresize_np(np.zeros((2, 2, 2, 2)), scale=2.0)
