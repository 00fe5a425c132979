"""The exact fast paths: every grid path equals the straightforward point query in fp32 (≤ 1e-5), for LIIF, lite
and bicubic, at integer and non-integer scales, odd sizes, across row chunks and blocks, and tiled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FIXTURES, require
from PIL import Image
from torch import nn

import enlarge.models.bicubic as bicubic_module
import enlarge.models.liif as liif_module
import enlarge.models.lite as lite_module
from enlarge.coords import axis_coords
from enlarge.engine import render
from enlarge.engine.query import Frame, query_grid
from enlarge.models import build, load_model
from enlarge.models.registry import LoadedModel, describe

EXACT = 1e-5
LR_HW = (23, 31)  # odd, non-square
OUT_SIZES = [
    (46, 62),  # ×2
    (69, 93),  # ×3
    (184, 248),  # ×8
    (57, 80),  # ×2.48 / ×2.58, a different scale per axis
    (100, 31),  # stretched: ×4.35 tall, ×1 wide
    (23, 31),  # ×1
]
CONFIGS = {
    "liif": ("liif", {"encoder": {"name": "edsr", "n_resblocks": 1, "n_feats": 8}, "hidden": [16, 16]}),
    "liif-plain": ("liif", {"encoder": {"name": "edsr", "n_resblocks": 1, "n_feats": 8}, "hidden": [16],
                            "feat_unfold": False, "local_ensemble": False, "cell_decode": False}),
    "liif-no-ensemble": ("liif", {"encoder": {"name": "edsr", "n_resblocks": 1, "n_feats": 8}, "hidden": [16],
                                  "local_ensemble": False}),
    "lite": ("lite", {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]}),
    "bicubic": ("bicubic", {}),
}
GOLDEN_POINT_SIZES = [(120, 100), (96, 100)]  # (W, H): the two smallest official outputs, for the slow reference


def tiny(key: str) -> LoadedModel:
    arch, config = CONFIGS[key]
    torch.manual_seed(0)
    module = build(arch, config).eval()
    return LoadedModel(module, describe(f"tiny-{key}", arch, config, module, has_weights=False))


class PointsOnly(nn.Module):
    """The same model seen without its grid path: the engine falls back to point queries."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.receptive_field = model.receptive_field

    def encode(self, lr: torch.Tensor) -> object:
        return self.model.encode(lr)

    def query(self, feats: object, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.model.query(feats, coord, cell)


def points_only(model: LoadedModel) -> LoadedModel:
    return LoadedModel(PointsOnly(model.module), model.descriptor)


def grid_and_points(model: nn.Module, lr: torch.Tensor, out_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    frame = Frame(0, 0, lr.shape[2], lr.shape[3], (lr.shape[2], lr.shape[3]))
    rows, cols = axis_coords(out_hw[0]), axis_coords(out_hw[1])
    with torch.inference_mode():
        feats = model.encode(lr)
        fast = query_grid(model, feats, frame, rows, cols, out_hw)
        slow = query_grid(PointsOnly(model), feats, frame, rows, cols, out_hw)
    return fast, slow


@pytest.mark.parametrize("key", sorted(CONFIGS))
@pytest.mark.parametrize("out_hw", OUT_SIZES)
def test_grid_path_equals_point_query(key: str, out_hw: tuple[int, int]) -> None:
    model = tiny(key).module
    fast, slow = grid_and_points(model, torch.rand(1, 3, *LR_HW), out_hw)
    assert fast.shape == slow.shape == (1, 3, *out_hw)
    assert (fast - slow).abs().max() <= EXACT


@pytest.mark.parametrize("key", ["liif", "lite"])
def test_grid_path_is_exact_across_row_chunks(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few rows (not dividing the grid) give the same pixels as one chunk and as the point query."""
    model = tiny(key).module
    lr = torch.rand(1, 3, *LR_HW)
    whole, slow = grid_and_points(model, lr, (69, 93))
    monkeypatch.setattr(liif_module if key == "liif" else lite_module, "GRID_CHUNK", 93 * 4 + 7)
    chunked, _ = grid_and_points(model, lr, (69, 93))
    assert (chunked - slow).abs().max() <= EXACT
    assert (chunked - whole).abs().max() <= EXACT


def test_bicubic_blocks_are_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Banded blocks that do not divide the output, at ×8 and a non-integer scale, equal the point form."""
    model = tiny("bicubic").module
    lr = torch.rand(1, 3, *LR_HW)
    monkeypatch.setattr(bicubic_module, "RESAMPLE_BLOCK", 7)
    for out_hw in [(184, 248), (57, 80)]:
        fast, slow = grid_and_points(model, lr, out_hw)
        assert (fast - slow).abs().max() <= EXACT


def test_lite_grid_path_follows_a_linearized_activation() -> None:
    """The grid path runs the head as it is: a ReLU replaced by identity (enlarge compress) is honoured."""
    model = tiny("lite").module
    model.head[0] = nn.Identity()
    fast, slow = grid_and_points(model, torch.rand(1, 3, *LR_HW), (57, 80))
    assert (fast - slow).abs().max() <= EXACT


@pytest.mark.parametrize("key", ["liif", "lite", "bicubic"])
@pytest.mark.parametrize("out_hw", [(97, 75), (74, 58)])
def test_tiled_grid_render_equals_untiled_point_reference(key: str, out_hw: tuple[int, int]) -> None:
    model = tiny(key)
    lr = torch.rand(1, 3, 37, 29)
    reference = render(points_only(model), lr, out_hw, precision="fp32")
    for tile in (None, 10, 16):
        fast = render(model, lr, out_hw, tile=tile, precision="fp32")
        assert (fast - reference).abs().max() <= EXACT


@pytest.mark.parametrize("size", GOLDEN_POINT_SIZES)
def test_point_reference_matches_official_golden_outputs(size: tuple[int, int]) -> None:
    """The straightforward point query on the official checkpoint reproduces the official code's outputs too
    (tests/test_models.py checks the engine's default, the grid path)."""
    model = load_model(require(FIXTURES / "edsr-baseline-liif-random.pth", "official LIIF checkpoint"))
    image = np.asarray(Image.open(FIXTURES / "input.png").convert("RGB"), np.float32) / 255
    lr = torch.from_numpy(image).permute(2, 0, 1)[None]
    expected = np.load(FIXTURES / f"expected_{size[0]}x{size[1]}.npy")
    out = render(points_only(model), lr, (size[1], size[0])).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(out - expected).max() <= EXACT
