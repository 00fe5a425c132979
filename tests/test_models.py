"""The model family: official LIIF parity, checkpoint layouts, registry rules, and fast paths equal to the reference."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FIXTURES, require
from enlarge.coords import axis_coords, make_coord
from enlarge.engine import render
from enlarge.engine.query import Frame, query_grid
from enlarge.errors import ModelError
from enlarge.models import SPECS, build, create, load_model
from enlarge.models.official import config_from_spec
from enlarge.models.registry import LoadedModel, describe

GOLDEN_SIZES = [(120, 100), (192, 160), (350, 292), (96, 100)]  # (W, H) of the official outputs
GOLDEN_TOL = 1e-5


def _fixture_input() -> torch.Tensor:
    img = np.asarray(Image.open(require(FIXTURES / "input.png", "golden LIIF input")).convert("RGB"), np.float32)
    return torch.from_numpy(img / 255).permute(2, 0, 1)[None]


def tiny(arch: str, **config) -> LoadedModel:
    torch.manual_seed(0)
    module = build(arch, config).eval()
    return LoadedModel(module, describe(f"tiny-{arch}", arch, config, module, has_weights=False))


@pytest.mark.slow
@pytest.mark.parametrize("size", GOLDEN_SIZES)
def test_official_golden_outputs(size):
    """Our LIIF on the official checkpoint reproduces the official code's float outputs."""
    model = load_model(require(FIXTURES / "edsr-baseline-liif-random.pth", "official LIIF checkpoint"))
    expected = np.load(FIXTURES / f"expected_{size[0]}x{size[1]}.npy")
    out = render(model, _fixture_input(), (size[1], size[0])).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= GOLDEN_TOL


def test_official_rdn_layout_matches_our_module():
    """The published RDN-LIIF spec builds our module with exactly the official keys and shapes."""
    layout = json.loads(require(FIXTURES / "rdn-liif-layout.json", "RDN-LIIF layout").read_text())
    module = build("liif", config_from_spec(layout["spec"], "rdn-liif.pth"))
    official = {k: tuple(v) for k, v in layout["shapes"].items() if not k.startswith("encoder.sub_mean")
                and not k.startswith("encoder.add_mean")}
    ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert ours == official


def test_foreign_and_corrupt_checkpoints_raise_model_error(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelError, match="not a model file"):
        load_model(junk)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(ModelError, match="not an official LIIF checkpoint"):
        load_model(foreign)
    with pytest.raises(ModelError, match="unknown model"):
        load_model("no-such-model")


LIIF_SPEC = {
    "name": "liif",
    "args": {
        "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
        "imnet_spec": {"name": "mlp", "args": {"hidden_list": [256, 256, 256, 256]}},
    },
}


def bad_model_files(folder):
    """Every kind of bad `--model` file issue 19 met or could meet, with the words its one line must hold."""
    import pickle

    from enlarge.models.specs import SPECS as specs
    from enlarge.models.specs import bundled_weights

    cases = {}
    text = folder / "notes.txt"
    text.write_text("hello\n")  # read as a legacy pickle this was `KeyError: 101`
    cases[text] = "not a model file"
    cases[Path("/etc/passwd")] = "not a model file"
    truncated = folder / "cut.pth"
    torch.save({"model": {**LIIF_SPEC, "sd": {"w": torch.zeros(64)}}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    cases[truncated] = "not a loadable checkpoint"
    odd = folder / "odd.pth"
    odd.write_bytes(b"\x80\x0f" + bytes(range(64)))  # a pickle of protocol 15: torch.load warned about it (fuzzing)
    cases[odd] = "not a loadable checkpoint"
    plain = folder / "plain.pkl"
    plain.write_bytes(pickle.dumps({"x": 1}, protocol=2))
    cases[plain] = "not a loadable checkpoint"
    layout = folder / "layout.pth"
    torch.save({"model": {"name": "liif", "args": 5, "sd": {}}}, layout)
    cases[layout] = "layout is not LIIF"
    values = folder / "values.pth"
    torch.save({"model": {**LIIF_SPEC, "sd": {"w": 3}}}, values)
    cases[values] = "not named tensors"
    wrong = folder / "wrong.pth"
    torch.save({"model": {**LIIF_SPEC, "sd": {"w": torch.zeros(2)}}}, wrong)
    cases[wrong] = "does not match its architecture"
    weights = bundled_weights(specs["lite"])
    if weights is not None:
        cut = folder / "cut.safetensors"
        cut.write_bytes(weights.read_bytes()[:1000])
        (folder / "cut.json").write_text(weights.with_suffix(".json").read_text())
        cases[cut] = "corrupt or not safetensors"
        other = folder / "other.safetensors"
        other.write_bytes(weights.read_bytes())
        card = weights.with_suffix(".json").read_text().replace('"n_feats": 32', '"n_feats": 16')
        (folder / "other.json").write_text(card)
        cases[other] = "does not match its architecture"
    return cases


def test_every_bad_model_file_is_one_model_error(tmp_path):
    """One ModelError each, and no warning (it would reach stderr beside our one line)."""
    for path, words in bad_model_files(tmp_path).items():
        with warnings.catch_warnings(record=True) as caught, pytest.raises(ModelError, match=words):
            warnings.simplefilter("always")
            load_model(path)
        assert [str(warning.message) for warning in caught] == [], path


def test_an_unknown_name_suggests_the_nearest():
    with pytest.raises(ModelError, match="did you mean 'lite'"):
        load_model("liet")
    with pytest.raises(ModelError, match="is a folder"):
        load_model(Path(__file__).parent)


def test_weighted_models_never_run_random():
    """A registered model without bundled weights refuses to load as if trained."""
    assert SPECS["liif-edsr-baseline"].needs_weights
    with pytest.raises(ModelError, match="no bundled weights"):
        create("liif-edsr-baseline")
    assert create("bicubic").descriptor.has_weights


@pytest.mark.parametrize("arch,config", [
    ("lite", {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]}),
    ("bicubic", {}),
])
@pytest.mark.parametrize("out_hw", [(57, 80), (69, 93), (46, 62), (100, 31)])
def test_grid_fast_path_equals_point_query(arch, config, out_hw):
    """The separable grid path gives the same colours as querying every pixel as a point."""
    loaded = tiny(arch, **config)
    model = loaded.module
    lr = torch.rand(1, 3, 23, 31)
    frame = Frame(0, 0, 23, 31, (23, 31))

    class PointsOnly(torch.nn.Module):
        def query(self, *args):
            return model.query(*args)

    points = LoadedModel(PointsOnly(), loaded.descriptor)
    assert loaded.grid is model and points.grid is None
    with torch.inference_mode():
        feats = model.encode(lr)
        rows, cols = axis_coords(out_hw[0]), axis_coords(out_hw[1])
        fast = query_grid(loaded, feats, frame, rows, cols, out_hw)
        slow = query_grid(points, feats, frame, rows, cols, out_hw)
    assert (fast - slow).abs().max() <= 1e-5


@pytest.mark.parametrize("arch,config", [
    ("liif", {"encoder": {"name": "edsr", "n_resblocks": 2, "n_feats": 8}, "hidden": [16, 16]}),
    ("lite", {"n_feats": 8, "n_resblocks": 2, "hidden": 16, "head": [8]}),
])
def test_tiled_equals_untiled(arch, config):
    """Tiles overlapped by the receptive field reproduce the whole-image output (≤ 1/255; in practice ~1e-6)."""
    model = tiny(arch, **config)
    lr = torch.rand(1, 3, 37, 29)
    whole = render(model, lr, (97, 75))
    tiled = render(model, lr, (97, 75), tile=10)
    assert (whole - tiled).abs().max() <= 1e-4


def test_bicubic_is_exact_on_integer_grid_at_scale_one():
    """At ×1 the cubic kernel interpolates: the output is the input."""
    model = create("bicubic")
    lr = torch.rand(1, 3, 9, 7)
    assert torch.allclose(render(model, lr, (9, 7)), lr, atol=1e-6)


def test_make_coord_convention():
    coord = make_coord((2, 4), flatten=False)
    assert coord.shape == (2, 4, 2)
    assert torch.allclose(coord[:, 0, 0], torch.tensor([-0.5, 0.5]))  # y first
    assert torch.allclose(coord[0, :, 1], torch.tensor([-0.75, -0.25, 0.25, 0.75]))


@pytest.mark.parametrize("channels_last", [False, True])
def test_rdn_inference_path_equals_the_training_path(channels_last: bool) -> None:
    """Without autograd RDN builds its dense blocks in place and fuses GFF block by block (memory); same output."""
    from enlarge.models.encoders import RDN

    torch.manual_seed(0)
    encoder = RDN(g0=8, n_blocks=3, n_layers=4, growth=4).eval()
    x = torch.rand(1, 3, 19, 23)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.enable_grad():
        reference = encoder(x).detach()
    with torch.inference_mode():
        fast = encoder(x)
    assert fast.shape == reference.shape
    assert torch.allclose(fast, reference, rtol=1e-5, atol=1e-6)


def test_a_tile_narrower_than_the_margin_is_widened_to_it():
    """Tiny tiles cannot multiply the work: a core is never narrower than the receptive-field margin."""
    from enlarge.engine.tiling import plan_tiles

    margin = 12
    plan = plan_tiles((64, 48), (128, 96), tile=2, margin=margin)
    assert len(plan.jobs) == 6 * 4  # cores of 12 pixels, not 32 × 24 cores of 2
