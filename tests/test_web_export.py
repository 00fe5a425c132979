"""`enlarge export --web`: the files of the static app, what models.js and ort/wasm.js carry, and the one-line
refusals (onnxruntime-web not installed, a model without a grid graph). Runs on a stand-in runtime folder, so it
needs neither npm nor a browser; tests/test_web_browser.py runs the real page."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import onnx
import pytest
from test_onnx import tiny

from enlarge.cli.main import main
from enlarge.engine.tiling import AUTO_TILE, AUTO_TILE_MAX_PIXELS
from enlarge.errors import EnlargeError, ModelError
from enlarge.export import web
from enlarge.export.onnx import PHASE_BANDS
from enlarge.export.web import APP_FILES, MODELS_SCRIPT, ORT_BINARY, ORT_DIST, ORT_FOLDER, ORT_LOADER, ORT_SCRIPT
from enlarge.export.web import FRAGMENTS, ORT_PACKAGE, PAGE, SHARED_FILES, WASM_SCRIPT, export_web, in_browser_page
from enlarge.fidelity import INVISIBLE_ALPHA
from enlarge.models.phases import LATTICE_TOLERANCE, MAX_PERIOD, SHIFTS

FAKE_VERSION = "0.0.0-test"
FAKE_BINARY = bytes(range(256)) * 3
FAKE_LOADER = "export default function factory() { return 'loader'; }\n"


def script_value(path: Path, name: str) -> dict:
    """The JSON a generated script assigns to `window.NAME`."""
    text = path.read_text()
    prefix = f"window.{name} = "
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix) : -2])


@pytest.fixture
def web_root(tmp_path: Path) -> Path:
    """The repository's app sources beside a stand-in onnxruntime-web install."""
    root = tmp_path / "web"
    (root / "app").mkdir(parents=True)
    for name in (*APP_FILES, FRAGMENTS):
        (root / "app" / name).write_bytes((web.REPO_WEB / "app" / name).read_bytes())
    dist = root / ORT_DIST
    dist.mkdir(parents=True)
    (dist / ORT_SCRIPT).write_text("var ort = {};\n")
    (dist / ORT_LOADER).write_text(FAKE_LOADER)
    (dist / ORT_BINARY).write_bytes(FAKE_BINARY)
    (root / ORT_PACKAGE / "package.json").write_text(json.dumps({"version": FAKE_VERSION}))
    return root


def test_export_writes_the_page_the_runtime_and_the_models(web_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "app"
    written = export_web([tiny("lite"), tiny("bicubic")], out, web_root)
    assert written.models == ("tiny-lite", "tiny-bicubic") and written.runtime_version == FAKE_VERSION
    assert written.index == out / "index.html"
    for name in (PAGE, *APP_FILES, *SHARED_FILES, MODELS_SCRIPT, f"{ORT_FOLDER}/{ORT_SCRIPT}", f"{ORT_FOLDER}/{WASM_SCRIPT}"):
        assert (out / name).is_file(), name
    html = (out / "index.html").read_text()
    for script in (f"{ORT_FOLDER}/{ORT_SCRIPT}", f"{ORT_FOLDER}/{WASM_SCRIPT}", MODELS_SCRIPT, "page.js", "app.js"):
        assert f'<script src="{script}"' in html  # classic scripts: the only kind file:// runs
    assert "http://" not in html and "https://" not in html
    assert "<!-- served:" not in html and 'id="token"' not in html and 'id="adaptive"' not in html  # server-only parts
    assert "Content-Security-Policy" in html and 'id="runtime-info"' in html and 'id="slider"' in html

    wasm = script_value(out / ORT_FOLDER / WASM_SCRIPT, "ENLARGE_WASM")
    assert base64.b64decode(wasm["binary"]) == FAKE_BINARY and wasm["loader"] == FAKE_LOADER

    settings = script_value(out / MODELS_SCRIPT, "ENLARGE_SETTINGS")
    assert settings["tile"] == {"auto_max_pixels": AUTO_TILE_MAX_PIXELS, "size": AUTO_TILE}
    assert settings["fidelity"]["invisible_alpha"] == INVISIBLE_ALPHA
    assert settings["phases"] == {"max_period": MAX_PERIOD, "lattice_tolerance": LATTICE_TOLERANCE,
                                  "shifts": list(SHIFTS)}
    lite, bicubic = settings["models"]
    assert lite["features"] == ["hidden", "lr"] and lite["grid_band"] >= 1 and lite["receptive_field"] > 0
    for model in (lite, bicubic):
        encoder = onnx.load_from_string(base64.b64decode(model["encoder"]))
        grid = onnx.load_from_string(base64.b64decode(model["grid"]))
        assert [i.name for i in encoder.graph.input] == ["image"]
        assert {"ys", "xs"} <= {i.name for i in grid.graph.input}
        assert [o.name for o in grid.graph.output] == ["rgb"]
    phases = onnx.load_from_string(base64.b64decode(lite["phases"]))  # lite decodes integer scales on it
    assert {"row_cells", "col_cells", "row_offsets", "col_offsets", "ys", "xs"} <= {i.name for i in phases.graph.input}
    assert lite["phase_band"] == lite["grid_band"] * PHASE_BANDS
    points = onnx.load_from_string(base64.b64decode(lite["points"]))  # the strips beside a phase block
    assert {"coord", "cell"} <= {i.name for i in points.graph.input}
    assert [o.name for o in points.graph.output] == ["rgb"]
    assert bicubic["phases"] is None and bicubic["points"] is None  # the page decodes every scale on the grid graph


def test_page_and_fragments_must_match() -> None:
    served = "<p>a</p><!-- served:x -->server<!-- /served --><p>b</p>"
    assert in_browser_page(served, "<!-- fragment:x -->\nbrowser\n<!-- /fragment -->") == "<p>a</p>browser<p>b</p>"
    with pytest.raises(EnlargeError, match="differ"):
        in_browser_page(served, "<!-- fragment:y -->\nbrowser\n<!-- /fragment -->")


def test_a_model_without_a_grid_graph_is_refused(web_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no grid decoder graph"):
        export_web([tiny("liif")], tmp_path / "app", web_root)


def test_missing_runtime_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "web"
    (bare / "app").mkdir(parents=True)
    with pytest.raises(EnlargeError, match=r"make web-deps"):
        export_web([tiny("bicubic")], tmp_path / "app", bare)
    monkeypatch.setattr(web, "REPO_WEB", bare)
    code = main(["export", "--web", str(tmp_path / "app2")])
    err = capsys.readouterr().err.splitlines()
    assert code != 0 and len(err) == 1 and "make web-deps" in err[0] and "npm ci" in err[0]
    assert not (tmp_path / "app2").exists()


def test_web_export_takes_no_run_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["export", "--web", str(tmp_path / "app"), "--onnx", str(tmp_path / "onnx")])
    err = capsys.readouterr().err.splitlines()
    assert code != 0 and len(err) == 1 and "--web" in err[0]
