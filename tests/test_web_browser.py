"""The page of `enlarge export --web` in a real browser: headless Chromium opens the exported folder from disk
(file://), enlarges at ×2.5, at integer scales (the phase graph on the centred block, the grid graph on the strips
around it), to exact sizes (a stretch that also shrinks one axis, a pad), an image with alpha and one large enough
to be tiled, downloads each result and compares it with the Python ONNX path: within one level of 255. The page's
port of the phase geometry finds the blocks Python finds. Nothing may be requested from the network; the compare
slider and the layout work as on the served page.

Needs chromium, chromedriver and selenium (`make browser-deps`) and onnxruntime-web (`make web-deps`): without
them the test is skipped with a loud reason, except under CI=true, where it fails. Screenshots go to pytest's
temporary folder, or to ENLARGE_TEST_ARTIFACTS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from chromium import artifacts_folder, missing_browser_parts, requested_urls, require_browser, start_chromium
from PIL import Image

from enlarge.errors import EnlargeError
from enlarge.export.web import export_web, runtime_dist

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "coffee.png"
CROP = (290, 220, 410, 300)  # 120×80 of the spoon
TILED_SIZE = (660, 440)  # the whole photo, resized to 290,400 px: above the engine's whole-image limit, so tiled
MODEL = "lite"
LEVELS = 1  # the browser's output may differ from Python's by one level of 255 (float rounding)
WAIT_S = 300.0
POLL_S = 0.1
DESKTOP = (1400, 1000)
PHONE = (390, 844)
SLIDER_START = 50
MIN_PROGRESS_STEPS_SEEN = 3  # distinct progress values between 0 and 100 the driver must read during a tiled run
ANSWERING_SCALE = "3"  # phase runs, tiled: ×2 (after the side strips left the grid graph) ends in too few runs
LOCAL_SCHEMES = ("file:", "blob:", "data:")

pytestmark = pytest.mark.slow  # a browser starts and runs the model


def _missing() -> list[str]:
    missing = missing_browser_parts()
    try:
        runtime_dist()
    except EnlargeError:
        missing.append("onnxruntime-web (web/node_modules)")
    return missing


require_browser(_missing(), "Install with `make browser-deps` and `make web-deps` (npm ci in web/), and "
                "`pip install selenium`.")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from enlarge.engine.query import to_local  # noqa: E402
from enlarge.engine.tiling import plan_tiles  # noqa: E402
from enlarge.models.phases import MAX_PERIOD, axis_phases, centred_block  # noqa: E402
from enlarge.models.registry import load_model  # noqa: E402
from enlarge.sizing import SizeRequest  # noqa: E402
from enlarge.upscaler import ONNX_BACKEND, Upscaler  # noqa: E402


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("web-app")
    return export_web([load_model(MODEL)], folder).index


@pytest.fixture(scope="module")
def python_onnx() -> Upscaler:
    return Upscaler(model=MODEL, backend=ONNX_BACKEND)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, downloads: Path, app: Path) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path_factory.mktemp("profile"), downloads, DESKTOP, wait_s=WAIT_S)
    driver.get(app.as_uri())
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test images: an RGB crop, the same with an alpha ramp (fully transparent at the left edge), a larger one."""
    folder = tmp_path_factory.mktemp("inputs")
    with Image.open(PHOTO) as photo:
        rgb = photo.convert("RGB")
    spoon = rgb.crop(CROP)
    width, height = spoon.size
    ramp = np.tile(np.linspace(0, 255, width).round().astype(np.uint8), (height, 1))
    rgba = Image.fromarray(np.dstack([np.asarray(spoon), ramp]), "RGBA")
    paths = {"spoon": folder / "spoon.png", "spoon-alpha": folder / "spoon-alpha.png", "large": folder / "large.png"}
    spoon.save(paths["spoon"])
    rgba.save(paths["spoon-alpha"])
    rgb.resize(TILED_SIZE, Image.Resampling.BICUBIC).save(paths["large"])
    return paths


def _wait(driver: WebDriver, condition, what: str):
    return WebDriverWait(driver, WAIT_S, POLL_S, ignored_exceptions=()).until(condition, f"waiting for {what}")


def _enlarge_in_browser(driver: WebDriver, image: Path, request: SizeRequest, downloads: Path) -> Path:
    """Choose `image`, ask for `request` (scale, or a size with a fit), enlarge, download; the downloaded file."""
    driver.find_element(By.ID, "file").send_keys(str(image))
    _wait(driver, lambda d: d.find_element(By.ID, "go").is_enabled(), "the Enlarge button")
    if request.scale is not None:
        driver.find_element(By.CSS_SELECTOR, "input[name=mode][value=scale]").click()
        fields = {"scale": str(request.scale)}
    else:
        driver.find_element(By.CSS_SELECTOR, "input[name=mode][value=size]").click()
        fields = {"width": str(request.size[0]), "height": str(request.size[1])}
        driver.find_element(By.ID, "fit").send_keys(request.fit)
    for field, value in fields.items():
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    driver.find_element(By.ID, "go").click()
    _wait(driver, lambda d: d.find_element(By.ID, "status").text.startswith(("Done:", "Error:")), "the result")
    status = driver.find_element(By.ID, "status").text
    assert status.startswith("Done:"), status
    download = driver.find_element(By.ID, "download")
    target = downloads / download.get_attribute("download")
    target.unlink(missing_ok=True)
    download.click()
    _wait(driver, lambda d: target.exists() and not list(downloads.glob("*.crdownload")), "the download")
    return target


GRID = {"grid"}
PHASES = {"grid", "phases", "points"}  # the centred blocks, the strips above and below them, the strips beside them
CASES = [  # (image, request, the decoder graphs the page must run)
    ("spoon", SizeRequest(scale=2.5), GRID),
    ("spoon", SizeRequest(scale=3), PHASES),
    ("spoon", SizeRequest(size=(301, 177), fit="stretch"), GRID),  # non-integer scales, unequal per axis
    ("spoon", SizeRequest(size=(240, 200), fit="stretch"), GRID),  # ×2 across but ×2.5 down: no block
    ("spoon", SizeRequest(size=(200, 60), fit="stretch"), GRID),  # enlarges x, shrinks y (the model, then Lanczos)
    ("spoon", SizeRequest(size=(250, 250), fit="cover"), GRID),
    ("spoon-alpha", SizeRequest(scale=2.5), GRID),
    ("spoon-alpha", SizeRequest(scale=2), PHASES),  # two unclamped passes, each with its block and strips
    ("spoon-alpha", SizeRequest(size=(250, 250), fit="pad"), GRID),
    ("large", SizeRequest(scale=1.2), GRID),  # tiles of the engine's size, with their margins
    ("large", SizeRequest(scale=2), PHASES),  # a block in every tile's own frame
]
RUNS = "return window.enlargeTimings.runs"


@pytest.mark.parametrize(("image", "request_", "graphs"), CASES, ids=[f"{i}-{r.label}-{r.fit}" for i, r, _ in CASES])
def test_browser_output_equals_python_onnx(browser: WebDriver, python_onnx: Upscaler, inputs: dict[str, Path],
                                           downloads: Path, tmp_path: Path, image: str,
                                           request_: SizeRequest, graphs: set[str]) -> None:
    got = _enlarge_in_browser(browser, inputs[image], request_, downloads)
    assert {graph for graph, runs in browser.execute_script(RUNS).items() if runs} == graphs
    expected = python_onnx.enlarge_file(inputs[image], tmp_path / f"python{got.suffix}", request_).output
    with Image.open(got) as browser_image, Image.open(expected) as python_image:
        assert browser_image.mode == python_image.mode and browser_image.size == python_image.size
        difference = np.abs(np.asarray(browser_image, dtype=int) - np.asarray(python_image, dtype=int))
    assert difference.max() <= LEVELS, f"{(difference > LEVELS).sum()} values differ by up to {difference.max()}"
    assert browser.find_element(By.ID, "fact-model").text == MODEL


# (LR length, output length, tile core or None): integer scales up to MAX_PERIOD and past it, rational and irregular
# scales, whole axes and the local frames of tiles with their margins
AXIS_CASES = [(n, m, tile) for n, tile in ((7, None), (40, None), (97, 30))
              for m in (n, 2 * n, 3 * n, 4 * n, 8 * n, MAX_PERIOD * n, (MAX_PERIOD + 1) * n, 5 * n // 2, 3 * n + 1)]
AXIS_MARGIN = 5
CENTRED_BLOCK = """return arguments[0].map(([coords, n]) => {
  const block = centredBlock(axisPhases(Float32Array.from(coords), n));
  return block && [block.period, block.start, block.periods, block.first, Array.from(block.offsets)];
});"""


def test_the_page_finds_the_centred_blocks_python_finds(browser: WebDriver) -> None:
    """app.js's axisPhases + centredBlock on a tile's local output centres give `phases.centred_block` of
    `phases.axis_phases` on the same float32 coordinates: the same block to the pixel and the same offsets to the
    bit, or none where Python finds none."""
    axes, expected = [], []
    for n, m, tile in AXIS_CASES:
        plan = plan_tiles((n, 1), (m, 1), tile, AXIS_MARGIN)
        for job in plan.jobs:
            ys = to_local(plan.rows[job.rows], job.frame.top, job.frame.height, n)
            axis = axis_phases(ys, job.frame.height)
            block = centred_block(axis) if axis is not None else None
            axes.append([ys.tolist(), job.frame.height])
            expected.append(None if block is None else [block.period, block.start, block.periods, block.first,
                                                        block.offset_table().flatten().tolist()])
    assert browser.execute_script(CENTRED_BLOCK, axes) == expected
    assert None in expected and any(b is not None and b[0] == MAX_PERIOD for b in expected)


def test_the_page_answers_while_it_enlarges(browser: WebDriver, inputs: dict[str, Path]) -> None:
    """A tiled run hands the main thread back between bands: the driver reads the progress bar moving through
    several values on the way (a page that held the thread to the end would answer only once it was done)."""
    browser.find_element(By.ID, "file").send_keys(str(inputs["large"]))
    _wait(browser, lambda d: d.find_element(By.ID, "go").is_enabled(), "the Enlarge button")
    browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=scale]").click()
    scale = browser.find_element(By.ID, "scale")
    scale.clear()
    scale.send_keys(ANSWERING_SCALE)
    seen = set()
    progress = "return document.getElementById('progress').value"
    status = "return document.getElementById('status').textContent"
    before = browser.execute_script(status)  # an earlier test's "Done: ..." may still be there
    browser.find_element(By.ID, "go").click()
    _wait(browser, lambda d: d.execute_script(status) != before, "the run to start")
    while not browser.execute_script(status).startswith(("Done:", "Error:")):
        seen.add(browser.execute_script(progress))
        time.sleep(POLL_S)
    assert browser.execute_script(status).startswith("Done:")
    assert len({value for value in seen if 0 < value < 100}) >= MIN_PROGRESS_STEPS_SEEN, sorted(seen)


def test_nothing_is_requested_from_the_network(browser: WebDriver, app: Path) -> None:
    """Every request of the page and its runs so far was local, and the browser logged no error (a refusal by the
    page's Content-Security-Policy would be one)."""
    urls = requested_urls(browser, app.parent.as_uri())
    assert any(url.endswith("models.js") for url in urls), urls
    assert all(url.startswith(LOCAL_SCHEMES) for url in urls), [u for u in urls if not u.startswith(LOCAL_SCHEMES)]
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_slider_compares_and_the_page_fits_a_phone(browser: WebDriver, inputs: dict[str, Path], downloads: Path,
                                                  artifacts: Path) -> None:
    _enlarge_in_browser(browser, inputs["spoon"], SizeRequest(scale=4), downloads)
    slider = browser.find_element(By.ID, "slider")
    split = "return getComputedStyle(document.getElementById('compare')).getPropertyValue('--split').trim()"
    assert browser.execute_script(split) == f"{SLIDER_START}%"
    slider.send_keys(Keys.END)
    assert browser.execute_script(split) == "100%"
    slider.send_keys(Keys.HOME)
    assert browser.execute_script(split) == "0%"
    slider.send_keys(*([Keys.ARROW_RIGHT] * SLIDER_START))
    assert "on this device" in browser.find_element(By.ID, "fact-time").text
    assert browser.save_screenshot(str(artifacts / "web.png"))
    browser.set_window_size(*PHONE)
    try:
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a phone screen"
    finally:
        browser.set_window_size(*DESKTOP)
