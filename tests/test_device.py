"""Inference on the model's device: the engine builds the output, coordinates, cells and decoder buffers where the
input lives. No GPU here, so the engine's plumbing is checked on the `meta` device (tensors without storage: a
tensor left on the CPU by mistake meets a meta one and fails) with models that record what they are handed, and
`cpu` given explicitly; `cuda` where torch sees no GPU is refused with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from enlarge.cli.main import main
from enlarge.engine import render
from enlarge.imageio import DecodedImage
from enlarge.models.registry import LoadedModel, describe
from enlarge.sizing import SizeRequest
from enlarge.upscaler import Upscaler

META = torch.device("meta")


class Recorder(nn.Module):
    """A grid model that records the devices of what the engine hands it."""

    receptive_field = 2

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.device] = []

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        self.seen.append(lr.device)
        return lr

    def query(self, feats: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        self.seen += [coord.device, cell.device]
        return coord.new_empty(*coord.shape[:2], 3)

    def query_grid(self, feats: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        self.seen += [ys.device, xs.device, cell.device]
        return ys.new_empty(1, 3, len(ys), len(xs))


class PointsRecorder(Recorder):
    query_grid = None  # type: ignore[assignment]


def loaded(module: nn.Module) -> LoadedModel:
    return LoadedModel(module, describe("recorder", "bicubic", {}, module, has_weights=False))


@pytest.mark.parametrize("module_type", [Recorder, PointsRecorder])
@pytest.mark.parametrize("tile", [None, 8])
def test_render_builds_everything_on_the_input_device(module_type: type[Recorder], tile: int | None) -> None:
    module = module_type()
    out = render(loaded(module), torch.empty(1, 3, 20, 17, device=META), (50, 41), tile=tile, precision="fp32")
    assert out.device == META and out.shape == (1, 3, 50, 41)
    assert module.seen and set(module.seen) == {META}


def test_explicit_cpu_device_renders_the_same_pixels() -> None:
    """lite on `device="cpu"` given explicitly, at ×3 (the dense path) and ×2.5, equals the default."""
    image = DecodedImage(np.random.default_rng(0).random((10, 12, 3), dtype=np.float32))
    for scale in (3, 2.5):
        plan = SizeRequest(scale=scale).plan((12, 10))
        default = Upscaler("lite", precision="fp32").upscale_image(image, plan).pixels
        explicit = Upscaler("lite", device="cpu", precision="fp32").upscale_image(image, plan).pixels
        assert np.array_equal(default, explicit)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    code = main(["upscale", str(src), "--scale", "2", "--device", "cuda", "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "cuda" in err[0] and "not available" in err[0]
    assert not (tmp_path / "out.png").exists()
