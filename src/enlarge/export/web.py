"""The static web app: the enlarge page running the models in the visitor's browser with onnxruntime-web.

`export_web(models, folder)` writes

- `index.html`: the served page (`serve/static/index.html`) with each of its `served:NAME` blocks replaced by
  the fragment NAME of `web/app/fragments.html` (one page, two front-ends);
- `app.js`, `web.css` (from `web/app/`), and `style.css` and `page.js` (the served page's stylesheet and the
  script both pages share);
- `ort/ort.wasm.min.js`: onnxruntime-web's WebAssembly build, from `web/node_modules` (pinned by
  `web/package-lock.json`; `make web-deps` installs it);
- `ort/wasm.js`: onnxruntime-web's WebAssembly binary and its loader module, as strings in a classic script;
- `models.js`: each model's encoder and grid decoder graphs, and its phase and point graphs where it has a phase
  graph (the ONNX export of `export/onnx.py`), and what the page needs to run them as the Python engine does
  (receptive field, grid and phase bands, tile sizes, the phase lattice's period limit and tolerance, alpha fidelity thresholds).

Why everything is a classic script: from `file://` Chrome refuses `fetch`, module scripts and `import()` of
files, but runs `<script src>`. The page hands the binary to onnxruntime (`env.wasm.wasmBinary`) and imports the
loader from a `blob:` URL, so the same folder works from disk and from any static host, and never asks the
network for anything. Threads need cross-origin isolation (COOP/COEP headers), which `file://` cannot have: the
page runs one thread there and uses threads where a host sends those headers.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from enlarge.engine.tiling import AUTO_TILE, AUTO_TILE_MAX_PIXELS
from enlarge.errors import EnlargeError, ModelError
from enlarge.export.onnx import export_onnx, phase_band
from enlarge.fileutil import atomic_write_text
from enlarge.models.phases import LATTICE_TOLERANCE, MAX_PERIOD, SHIFTS
from enlarge.models.registry import LoadedModel
from enlarge.models.specs import DEFAULT_MODEL, SPECS, available
from enlarge.sizing import DEFAULT_MAX_OUTPUT_MP, DEFAULT_PAD_COLOR
from enlarge.fidelity import FAINT_ALPHA, HARD_STEP, INVISIBLE_ALPHA, TRUSTED_ALPHA

REPO_WEB = Path(__file__).resolve().parents[3] / "web"  # the repository's web/ (a source checkout)
APP_FOLDER = "app"
APP_FILES = ("app.js", "web.css")
PAGE = "index.html"
FRAGMENTS = "fragments.html"
SERVED_BLOCK = re.compile(r"<!-- served:(?P<name>[\w-]+) -->.*?<!-- /served -->", re.DOTALL)
FRAGMENT = re.compile(r"<!-- fragment:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /fragment -->", re.DOTALL)
SERVE_STATIC = Path(__file__).resolve().parents[1] / "serve" / "static"
SHARED_FILES = ("style.css", "page.js")  # the served page's stylesheet and the script both pages share
ORT_PACKAGE = Path("node_modules") / "onnxruntime-web"
ORT_DIST = ORT_PACKAGE / "dist"
ORT_SCRIPT = "ort.wasm.min.js"  # the WebAssembly-only build, a classic script
ORT_LOADER = "ort-wasm-simd-threaded.mjs"  # the Emscripten loader it imports
ORT_BINARY = "ort-wasm-simd-threaded.wasm"  # SIMD; threads where the page is cross-origin isolated
ORT_FOLDER = "ort"
WASM_SCRIPT = "wasm.js"
MODELS_SCRIPT = "models.js"
# the bundled models with a grid decoder graph, which the page runs; the first is its default
WEB_MODELS = (DEFAULT_MODEL, "lite-real", "bicubic")


@dataclass(frozen=True)
class WebExport:
    """What `export_web` wrote: the folder, its page, and the models in it."""

    folder: Path
    index: Path
    models: tuple[str, ...]
    runtime_version: str


def runtime_dist(web_root: Path | None = None) -> Path:
    """onnxruntime-web's dist folder under `web_root` (default: the repository's web/); EnlargeError saying how to
    install it when absent."""
    web_root = web_root if web_root is not None else REPO_WEB
    dist = web_root / ORT_DIST
    if not all((dist / name).is_file() for name in (ORT_SCRIPT, ORT_LOADER, ORT_BINARY)):
        raise EnlargeError(
            f"the web app needs onnxruntime-web in {web_root / 'node_modules'}: run `make web-deps` (npm ci in web/)"
        )
    return dist


def default_models() -> list[str]:
    """The names of WEB_MODELS that are usable here (weights bundled, or none needed)."""
    return [name for name in WEB_MODELS if name in SPECS and available(SPECS[name])]


def export_web(models: list[LoadedModel], folder: Path, web_root: Path | None = None) -> WebExport:
    """Write the static app with `models` (the first is the page's default) into `folder` (created if missing).

    Each model needs a grid graph (`decoder_grid.onnx`: lite, lite-real, bicubic); ModelError for one without. Its
    phase graph (`decoder_phases.onnx`: lite, lite-real) goes with it, and then its point graph (`decoder.onnx`):
    the page decodes integer scales' centred blocks on the one and the narrow strips beside them on the other.
    """
    web_root = web_root if web_root is not None else REPO_WEB
    dist = runtime_dist(web_root)
    if not models:
        raise ModelError("the web app needs at least one model")
    folder = Path(folder)
    try:
        (folder / ORT_FOLDER).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnlargeError(f"cannot create the web app folder {folder} ({exc.strerror})") from None
    entries = [_model_entry(model) for model in models]
    page = in_browser_page((SERVE_STATIC / PAGE).read_text(encoding="utf-8"),
                           (web_root / APP_FOLDER / FRAGMENTS).read_text(encoding="utf-8"))
    atomic_write_text(folder / PAGE, page)
    for name in APP_FILES:
        shutil.copyfile(web_root / APP_FOLDER / name, folder / name)
    for name in SHARED_FILES:
        shutil.copyfile(SERVE_STATIC / name, folder / name)
    shutil.copyfile(dist / ORT_SCRIPT, folder / ORT_FOLDER / ORT_SCRIPT)
    wasm = {
        "loader": (dist / ORT_LOADER).read_text(encoding="utf-8"),
        "binary": base64.b64encode((dist / ORT_BINARY).read_bytes()).decode("ascii"),
    }
    atomic_write_text(folder / ORT_FOLDER / WASM_SCRIPT, f"window.ENLARGE_WASM = {json.dumps(wasm)};\n")
    settings = {
        "models": entries,
        "tile": {"auto_max_pixels": AUTO_TILE_MAX_PIXELS, "size": AUTO_TILE},
        "phases": {"max_period": MAX_PERIOD, "lattice_tolerance": LATTICE_TOLERANCE, "shifts": list(SHIFTS)},
        "fidelity": {"faint_alpha": FAINT_ALPHA, "trusted_alpha": TRUSTED_ALPHA, "hard_step": HARD_STEP,
                     "invisible_alpha": INVISIBLE_ALPHA},
        "pad_color": list(DEFAULT_PAD_COLOR),
        "max_output_mp": DEFAULT_MAX_OUTPUT_MP,
    }
    atomic_write_text(folder / MODELS_SCRIPT, f"window.ENLARGE_SETTINGS = {json.dumps(settings)};\n")
    version = json.loads((web_root / ORT_PACKAGE / "package.json").read_text())["version"]
    return WebExport(folder, folder / PAGE, tuple(e["name"] for e in entries), version)


def in_browser_page(served: str, fragments: str) -> str:
    """The served page with each `served:NAME` block replaced by the fragment NAME; EnlargeError if a block has no
    fragment or a fragment no block (the two files drifted apart)."""
    parts = {m["name"]: m["body"].strip() for m in FRAGMENT.finditer(fragments)}
    blocks = [m["name"] for m in SERVED_BLOCK.finditer(served)]
    if sorted(blocks) != sorted(parts):
        raise EnlargeError(f"the served page's blocks {sorted(blocks)} and the fragments {sorted(parts)} of "
                           f"{FRAGMENTS} differ; give every block one fragment")
    return SERVED_BLOCK.sub(lambda m: parts[m["name"]], served)


def _model_entry(model: LoadedModel) -> dict[str, object]:
    """One model for models.js: its graphs (base64; `phases` and `points` None for a model without a phase graph,
    which the page then decodes on the grid graph at every scale) and what the page needs to tile and band as the
    engine does."""
    with tempfile.TemporaryDirectory(prefix="enlarge-web-") as tmp:
        paths = export_onnx(model, Path(tmp))
        if paths.grid is None:
            raise ModelError(f"{model.descriptor.name} has no grid decoder graph, which the web app runs; "
                             "export lite, lite-real or bicubic")
        meta = json.loads(paths.meta.read_text())
        encoder, grid = paths.encoder.read_bytes(), paths.grid.read_bytes()
        phases = paths.phases.read_bytes() if paths.phases is not None else None
        points = paths.decoder.read_bytes() if paths.phases is not None else None
    spec = SPECS.get(meta["name"])
    card = meta.get("card") or {}
    return {
        "name": meta["name"],
        "description": spec.description if spec is not None else card.get("description") or meta["name"],
        "features": meta["features"],
        "receptive_field": meta["receptive_field"],
        "grid_band": meta["grid_band"],
        "encoder": base64.b64encode(encoder).decode("ascii"),
        "grid": base64.b64encode(grid).decode("ascii"),
        "phases": base64.b64encode(phases).decode("ascii") if phases is not None else None,
        "points": base64.b64encode(points).decode("ascii") if points is not None else None,  # beside a phase block
        "phase_band": phase_band(meta["grid_band"]),  # pixels per phase graph run, as OnnxGridModel's
    }
