"""The registry is open for extension: a new architecture and a new named model register themselves, the model
contract is checked once at load, the catalogue needs no torch, and models/official.py stands on its own."""

from __future__ import annotations

import pytest
import torch

from enlarge.catalogue import list_models, parameter_table, stored_parameter_counts
from enlarge.errors import ModelError
from enlarge.models import architectures, specs
from enlarge.models.architectures import ARCHS, LITTLE_PATHS, build, describe, register_arch
from enlarge.models.bicubic import Bicubic
from enlarge.models.contract import BandedGridDecoder, GridDecoder, LoadedModel, SuperResolver
from enlarge.models.registry import create
from enlarge.models.specs import SPECS, ModelSpec, register_spec
from test_cli_startup import modules_loaded


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(architectures, "ARCHS", dict(ARCHS))
    monkeypatch.setattr(architectures, "LITTLE_PATHS", dict(LITTLE_PATHS))
    monkeypatch.setattr(specs, "SPECS", dict(SPECS))
    import enlarge.models.registry as registry

    monkeypatch.setattr(registry, "SPECS", specs.SPECS)


def test_new_architecture_and_spec_register_without_editing_the_registry(clean_registry: None) -> None:
    @register_arch("doubled-bicubic", little="bicubic")
    class Doubled(Bicubic):
        pass

    register_spec(ModelSpec("doubled", "doubled-bicubic", {}, "bicubic under another name", needs_weights=False))
    loaded = create("doubled")
    assert isinstance(loaded.module, Doubled) and loaded.descriptor.little == "bicubic"
    with pytest.raises(ValueError, match="already registered"):
        register_spec(ModelSpec("doubled", "bicubic", {}, "again", needs_weights=False))
    with pytest.raises(ValueError, match="already registered"):
        register_arch("doubled-bicubic")(Bicubic)


def test_contract_is_checked_at_load() -> None:
    class EncodesOnly(torch.nn.Module):
        receptive_field = 1

        def encode(self, lr: torch.Tensor) -> torch.Tensor:
            return lr

    module = EncodesOnly()
    with pytest.raises(ModelError, match="EncodesOnly is not a super-resolution model .lacks query"):
        describe("x", "custom", {}, module, has_weights=False)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_registered_architecture_meets_the_contract(name: str) -> None:
    with torch.device("meta"):
        module = build(SPECS[name].arch, SPECS[name].config)
    assert isinstance(module, SuperResolver) and isinstance(module, GridDecoder)


def test_optional_paths_are_recorded_once_at_load() -> None:
    """The engine reads `LoadedModel.grid`, never the module: a grid path is found when the model is loaded, and a
    band-friendly one (the ONNX grid graph) only where the module names its band."""
    with torch.device("meta"):
        liif = build("liif", SPECS["liif-edsr-baseline"].config)
    lite = create("lite")
    assert lite.grid is lite.module and LoadedModel(liif, describe("l", "liif", {}, liif, has_weights=False)).grid is liif
    assert isinstance(lite.module, BandedGridDecoder) and isinstance(create("bicubic").module, BandedGridDecoder)
    assert not isinstance(liif, BandedGridDecoder)  # its grid path convolves the whole feature map on every call

    class PointsOnly(torch.nn.Module):
        receptive_field = 1

        def encode(self, lr: torch.Tensor) -> torch.Tensor:
            return lr

        def query(self, feats: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
            return coord

    module = PointsOnly()
    assert LoadedModel(module, describe("p", "custom", {}, module, has_weights=False)).grid is None


def test_stored_parameter_counts_are_current() -> None:
    """models/parameter_counts.json, which `enlarge models` reads instead of building every model."""
    assert stored_parameter_counts() == parameter_table(), "run PYTHONPATH=src python scripts/update_parameter_counts.py"


def test_catalogue_counts_match_the_models() -> None:
    counts = parameter_table()
    assert {info.name: info.parameters for info in list_models()} == {n: e["parameters"] for n, e in counts.items()}


def test_specs_and_catalogue_import_no_torch() -> None:
    assert modules_loaded("import enlarge.catalogue, enlarge.models.specs\nenlarge.catalogue.list_models()") == set()


@pytest.mark.slow
def test_official_loader_does_not_import_the_registry() -> None:
    """The import cycle between official.py and registry.py is gone: official.py loads on its own."""
    code = "import sys\nimport enlarge.models.official\nassert 'enlarge.models.registry' not in sys.modules"
    modules_loaded(code)  # raises CalledProcessError if the assertion fails
