"""The exact fast paths: every grid path equals the straightforward point query in fp32 (≤ 1e-5), for LIIF, lite
and bicubic, at integer and non-integer scales, odd sizes, across row chunks and blocks, and tiled; the phase-dense
path of periodic grids at every integer scale 2…12 and at small rational scales."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FIXTURES, require
from PIL import Image
from torch import nn

import enlarge.models.bicubic as bicubic_module
import enlarge.models.ensemble as ensemble_module
import enlarge.models.liif as liif_module
import enlarge.models.lite as lite_module
from enlarge.coords import axis_coords
from enlarge.engine import render
from enlarge.engine.query import Frame, query_grid
from enlarge.models import build, load_model
from enlarge.models.folded import affine_layers, fold, folded_block
from enlarge.models.mlp import MLP
from enlarge.models.phases import axis_phases, centred_block
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
    """The engine's query of `model` on the whole output grid, and the same model's through point queries only."""
    frame = Frame(0, 0, lr.shape[2], lr.shape[3], (lr.shape[2], lr.shape[3]))
    rows, cols = axis_coords(out_hw[0]), axis_coords(out_hw[1])
    fast_model, slow_model = (LoadedModel(m, describe("test", "test", {}, m, has_weights=False))
                              for m in (model, PointsOnly(model)))
    assert fast_model.grid is model and slow_model.grid is None  # what `describe` found, once
    with torch.inference_mode():
        feats = model.encode(lr)
        fast = query_grid(fast_model, feats, frame, rows, cols, out_hw)
        slow = query_grid(slow_model, feats, frame, rows, cols, out_hw)
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


DENSE_LR_HW = (13, 11)  # odd, non-square
INTEGER_SCALES = range(2, 13)
RATIONAL_SIZES = [
    ((10, 12), (25, 30)),  # ×2.5
    ((18, 22), (27, 33)),  # ×1.5, as 1280×720 → 1920×1080
    ((8, 12), (30, 45)),  # ×3.75
    ((13, 11), (39, 22)),  # ×3 tall, ×2 wide
]


def spy_phases(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of the phase-dense decoder."""
    calls: list[int] = []
    original = ensemble_module.decode_phases

    def counted(*args: object, **kwargs: object) -> None:
        calls.append(1)
        original(*args, **kwargs)

    monkeypatch.setattr(ensemble_module, "decode_phases", counted)
    return calls


@pytest.mark.parametrize("key", ["liif", "lite"])
@pytest.mark.parametrize("scale", INTEGER_SCALES)
def test_phase_dense_path_equals_point_query_at_integer_scales(
    key: str, scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_phases(monkeypatch)
    out_hw = (DENSE_LR_HW[0] * scale, DENSE_LR_HW[1] * scale)
    fast, slow = grid_and_points(tiny(key).module, torch.rand(1, 3, *DENSE_LR_HW), out_hw)
    assert calls, "the periodic grid did not take the dense path"
    assert (fast - slow).abs().max() <= EXACT


@pytest.mark.parametrize("key", ["liif", "lite"])
@pytest.mark.parametrize(("lr_hw", "out_hw"), RATIONAL_SIZES)
def test_phase_dense_path_equals_point_query_at_rational_scales(
    key: str, lr_hw: tuple[int, int], out_hw: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_phases(monkeypatch)
    fast, slow = grid_and_points(tiny(key).module, torch.rand(1, 3, *lr_hw), out_hw)
    assert calls, "the periodic grid did not take the dense path"
    assert (fast - slow).abs().max() <= EXACT


@pytest.mark.parametrize(("lr_hw", "out_hw"), [((37, 29), (74, 58)), ((37, 29), (111, 87)), ((36, 28), (90, 70))])
def test_tiled_phase_dense_render_equals_untiled_point_reference(
    lr_hw: tuple[int, int], out_hw: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiles start at arbitrary LR offsets and phases (×2, ×3, ×2.5): each still takes the dense path and matches."""
    model = tiny("lite")
    lr = torch.rand(1, 3, *lr_hw)
    reference = render(points_only(model), lr, out_hw, precision="fp32")
    calls = spy_phases(monkeypatch)
    for tile in (None, 10, 16):
        fast = render(model, lr, out_hw, tile=tile, precision="fp32")
        assert (fast - reference).abs().max() <= EXACT
    assert calls


def test_phase_dense_path_honours_small_chunks_and_a_deeper_head(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of phase rows that do not divide the grid, a two-layer head and a linearized activation."""
    torch.manual_seed(0)
    module = build("lite", {"n_feats": 8, "n_resblocks": 1, "hidden": 12, "head": [10, 6]}).eval()
    module.head[0] = nn.Identity()
    monkeypatch.setattr(lite_module, "GRID_CHUNK", 37)
    calls = spy_phases(monkeypatch)
    fast, slow = grid_and_points(module, torch.rand(1, 3, *DENSE_LR_HW), (52, 44))
    assert calls
    assert (fast - slow).abs().max() <= EXACT


@pytest.mark.parametrize("out_hw", [(26, 22), (52, 44), (104, 88), (39, 22), (57, 80)])
def test_traced_grid_form_equals_point_query(out_hw: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """lite's grid path as an ONNX trace takes it (the cross-product decoder, bicubic by gathers), run eagerly:
    ×2, ×4, ×8, ×3 by ×2 and a non-integer scale."""
    monkeypatch.setattr(torch.jit, "is_tracing", lambda: True)
    calls = spy_phases(monkeypatch)
    fast, slow = grid_and_points(tiny("lite").module, torch.rand(1, 3, *DENSE_LR_HW), out_hw)
    assert not calls, "a trace must not take the eager phase path"
    assert (fast - slow).abs().max() <= EXACT


@pytest.mark.parametrize(
    ("n_lr", "n_out", "period"), [(13, 26, 2), (13, 39, 3), (10, 25, 5), (8, 30, 15), (23, 57, None), (20, 17, None)]
)
def test_axis_phases_recognises_small_periods_only(n_lr: int, n_out: int, period: int | None) -> None:
    plan = axis_phases(axis_coords(n_out), n_lr)
    assert (plan.period if plan else None) == period
    if plan is not None:  # the regular block is where no neighbour is clamped
        lo_pos = (plan.lo + 0.5) * n_lr / n_out
        assert lo_pos >= 0.5 and (plan.lo == 0 or (plan.lo - 0.5) * n_lr / n_out < 0.5)
        assert sum(ph.count for ph in plan.phases) == plan.hi - plan.lo


def test_phase_dense_path_keeps_a_head_it_cannot_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    """A head with an activation other than ReLU runs as it is, still exact."""
    model = tiny("lite").module
    model.head[0] = nn.GELU()
    calls = spy_phases(monkeypatch)
    fast, slow = grid_and_points(model, torch.rand(1, 3, *DENSE_LR_HW), (52, 44))
    assert calls and affine_layers(model.head) is None
    assert (fast - slow).abs().max() <= EXACT


def blended_reference(head: nn.Module, x: torch.Tensor, offset: torch.Tensor, blend: torch.Tensor) -> torch.Tensor:
    """Σₙ blendₙ·head(xₙ + offsetₙ), the straightforward way, in float32."""
    return sum(b * head((xn + o).clone()).float() for xn, o, b in zip(x, offset, blend))


def test_folded_head_equals_the_head_it_folds() -> None:
    """Offsets and blend folded into a deeper head's parameters: exact in fp32, and in bf16 no further from fp32
    than the straightforward head run in bf16 (a bias holding W·offset is large; what bf16 cannot hold of it is
    carried on)."""
    torch.manual_seed(0)
    head = nn.Sequential(nn.ReLU(), *MLP(12, 3, [10, 6]).layers).eval()
    x, offset, blend = torch.randn(4, 500, 12), 2 * torch.randn(4, 12), torch.rand(4)
    with torch.inference_mode():
        exact = blended_reference(head, x, offset, blend)
        layers = affine_layers(head)
        folded = fold(layers, offset, blend, torch.float32)
        assert (folded(torch.maximum(x, folded.entry.unsqueeze(1))).t() - exact).abs().max() <= EXACT  # channels first
        x16, offset16 = x.bfloat16(), offset.bfloat16()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain = blended_reference(head, x16, offset16, blend)
            folded16 = fold(layers, offset16.float(), blend, torch.bfloat16)
            fast = folded16(torch.maximum(x16, folded16.entry.unsqueeze(1))).t()
    reference = blended_reference(head, x16.float(), offset16.float(), blend)
    assert (fast - reference).pow(2).mean() <= (plain - reference).pow(2).mean()


def test_folded_block_equals_the_head_it_folds() -> None:
    """The traced form of the folding, every phase pair at once: a deeper head, exact in fp32 per phase pair."""
    torch.manual_seed(0)
    head = nn.Sequential(nn.ReLU(), *MLP(12, 3, [10, 6]).layers).eval()
    x, offset, blend = torch.randn(4, 50, 12), 2 * torch.randn(3, 2, 4, 12), torch.rand(3, 2, 4)
    with torch.inference_mode():
        got = folded_block(affine_layers(head), x.transpose(0, 1), offset, blend)  # P×Q×N×out
        for r in range(3):
            for c in range(2):
                exact = blended_reference(head, x, offset[r, c], blend[r, c])
                assert (got[r, c] - exact).abs().max() <= EXACT


@pytest.mark.parametrize("scale", INTEGER_SCALES)
def test_centred_block_equals_point_query(scale: int) -> None:
    """lite's `query_block` (what the ONNX phase graph traces), run eagerly on the centred block of an integer
    scale on an odd image, equals the point query there; the block is all but the border strips."""
    model = tiny("lite").module
    lr = torch.rand(1, 3, *DENSE_LR_HW)
    out_hw = (DENSE_LR_HW[0] * scale, DENSE_LR_HW[1] * scale)
    ys, xs = axis_coords(out_hw[0]), axis_coords(out_hw[1])
    by, bx = centred_block(axis_phases(ys, DENSE_LR_HW[0])), centred_block(axis_phases(xs, DENSE_LR_HW[1]))
    assert (by.periods, bx.periods) == (DENSE_LR_HW[0] - 1, DENSE_LR_HW[1] - 1)  # between the first and last centres
    _, slow = grid_and_points(model, lr, out_hw)
    cell = torch.tensor([2 / out_hw[0], 2 / out_hw[1]])
    with torch.inference_mode():
        block = model.query_block(model.encode(lr), by.cells(), bx.cells(), by.offset_table(), bx.offset_table(),
                                  ys[by.span()], xs[bx.span()], cell)
    assert (block - slow[:, :, by.span(), bx.span()]).abs().max() <= EXACT
