"""The web page of `enlarge serve` in a real browser: a real server (uvicorn in a subprocess) driven through
headless Chromium with Selenium: upload, enlarge, compare (slider by keyboard and by pointer), download; the
keyboard order, the labels, and the layout at phone width.

Needs Debian's `chromium` and `chromium-driver` (`make browser-deps`) and the `selenium` package. Without them
the test is skipped with a loud reason, except under CI=true, where it fails: CI must run it. Screenshots go to
pytest's temporary folder, or to the folder named by ENLARGE_TEST_ARTIFACTS (CI keeps them); never into the
repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium import artifacts_folder, missing_browser_parts, require_browser, start_chromium
from PIL import Image

from enlarge.serve.launch import ServeProcess

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "coffee.png"
CROP = (290, 220, 410, 300)  # 120x80 of the spoon: small enough to see its pixels beside the enlargement
SCALE = 4
OUTPUT_SIZE = (480, 320)

pytestmark = pytest.mark.slow  # a server and a browser start
DESKTOP = (1400, 1000)
PHONE = (390, 844)
WAIT_S = 30.0
POLL_S = 0.1
SLIDER_START = 50
ARROW_PRESSES = 10
POINTER_AT = 0.25  # fraction of the image's width where the pointer test presses
POINTER_TOLERANCE = 3  # percent
TAB_LIMIT = 40
FOCUS_ORDER = ("file", "scale", "model", "format", "go", "slider", "download")


require_browser(missing_browser_parts())

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """`enlarge serve` on a free loopback port, one worker; its URL."""
    serve = ServeProcess(["--workers", "1"], cwd=REPO)
    yield serve.url
    if not serve.stop():
        pytest.fail("the server did not stop within its grace period on SIGTERM")


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path_factory.mktemp("profile"), downloads, DESKTOP)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("input") / "coffee-spoon.png"
    with Image.open(PHOTO) as image:
        image.crop(CROP).save(path)
    return path


def _wait(driver: WebDriver, condition, what: str):
    return WebDriverWait(driver, WAIT_S, POLL_S, ignored_exceptions=()).until(condition, f"waiting for {what}")


def _slider_value(driver: WebDriver) -> int:
    return int(driver.find_element(By.ID, "slider").get_attribute("value"))


def _split(driver: WebDriver) -> str:
    return driver.execute_script(
        "return getComputedStyle(document.getElementById('compare')).getPropertyValue('--split').trim()"
    )


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_folder(tmp_path_factory)


def _screenshot(driver: WebDriver, folder: Path, name: str) -> Path:
    path = folder / name
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    return path


def test_upload_enlarge_compare_download(
    server: str, browser: WebDriver, photo: Path, downloads: Path, artifacts: Path
) -> None:
    browser.set_window_size(*DESKTOP)
    browser.get(server)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option[value='bicubic']"), "the models")

    browser.find_element(By.ID, "file").send_keys(str(photo))
    _wait(browser, lambda d: "120 × 80" in d.find_element(By.ID, "input-info").text, "the input preview")
    scale = browser.find_element(By.ID, "scale")
    scale.clear()
    scale.send_keys(str(SCALE))
    browser.find_element(By.ID, "model").send_keys("bicubic")
    assert browser.find_element(By.ID, "adaptive").get_property("disabled")  # bicubic has no little path to route to
    browser.find_element(By.ID, "go").click()

    _wait(browser, expected_conditions.visibility_of_element_located((By.ID, "result")), "the result")
    assert browser.find_element(By.ID, "status").text.startswith("Done:")
    assert browser.find_element(By.ID, "fact-model").text == "bicubic"
    assert browser.find_element(By.ID, "fact-size").text == "120 × 80 → 480 × 320 px"
    assert "s on the server" in browser.find_element(By.ID, "fact-time").text
    _wait(browser, lambda d: d.execute_script("return document.getElementById('after').naturalWidth") == 480,
          "the enlarged image to load")

    # compare by keyboard: the slider is a native range input, so arrows, Home and End move it
    slider = browser.find_element(By.ID, "slider")
    assert _slider_value(browser) == SLIDER_START and _split(browser) == f"{SLIDER_START}%"
    slider.send_keys(*([Keys.ARROW_LEFT] * ARROW_PRESSES))
    assert _slider_value(browser) == SLIDER_START - ARROW_PRESSES
    assert _split(browser) == f"{SLIDER_START - ARROW_PRESSES}%"
    assert slider.get_attribute("aria-valuetext") == "40% original, 60% enlarged"
    slider.send_keys(Keys.END)
    assert _split(browser) == "100%"
    slider.send_keys(Keys.HOME)
    assert _split(browser) == "0%"

    # compare by pointer: pressing on the image moves the split there
    compare = browser.find_element(By.ID, "compare")
    width = compare.size["width"]
    ActionChains(browser).move_to_element_with_offset(compare, int(width * (POINTER_AT - 0.5)), 0).click().perform()
    assert abs(_slider_value(browser) - POINTER_AT * 100) <= POINTER_TOLERANCE

    slider.send_keys(*([Keys.ARROW_RIGHT] * (SLIDER_START - _slider_value(browser))))
    _screenshot(browser, artifacts, "serve.png")

    download = browser.find_element(By.ID, "download")
    name = download.get_attribute("download")
    assert name == f"{photo.stem}_x{SCALE}.png"
    download.click()
    target = downloads / name
    _wait(browser, lambda d: target.exists() and not list(downloads.glob("*.crdownload")), "the download")
    with Image.open(target) as enlarged:
        assert enlarged.size == OUTPUT_SIZE


def test_bad_file_shows_the_servers_error(server: str, browser: WebDriver, tmp_path: Path) -> None:
    browser.get(server)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "the models")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is not a picture")
    browser.find_element(By.ID, "file").send_keys(str(not_an_image))
    _wait(browser, lambda d: d.find_element(By.ID, "go").is_enabled(), "the Enlarge button")
    browser.find_element(By.ID, "go").click()
    status = browser.find_element(By.ID, "status")
    _wait(browser, lambda d: "error" in status.get_attribute("class"), "the error")
    assert "not an image" in status.text


def test_keyboard_order_and_labels(server: str, browser: WebDriver, photo: Path) -> None:
    browser.get(server)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "the models")
    browser.find_element(By.ID, "file").send_keys(str(photo))
    browser.find_element(By.ID, "go").click()
    _wait(browser, expected_conditions.visibility_of_element_located((By.ID, "result")), "the result")

    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select, button')]"
        ".filter(e => e.type !== 'submit' && e.labels.length === 0).map(e => e.id || e.name)"
    )
    assert unlabelled == []

    browser.execute_script("document.getElementById(arguments[0]).focus()", FOCUS_ORDER[0])  # Tab on from the top
    focused = [FOCUS_ORDER[0]]
    while len(focused) < TAB_LIMIT and FOCUS_ORDER[-1] not in focused:
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused.append(browser.execute_script("return document.activeElement.id"))
    positions = [focused.index(element_id) for element_id in FOCUS_ORDER if element_id in focused]
    assert len(positions) == len(FOCUS_ORDER), f"not all reached by Tab: {focused}"
    assert positions == sorted(positions), f"focus order was {focused}"


def test_phone_width_has_no_sideways_scroll(server: str, browser: WebDriver, photo: Path, artifacts: Path) -> None:
    browser.set_window_size(*PHONE)
    try:
        browser.get(server)
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "the models")
        browser.find_element(By.ID, "file").send_keys(str(photo))
        browser.find_element(By.ID, "go").click()
        _wait(browser, expected_conditions.visibility_of_element_located((By.ID, "result")), "the result")
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a phone screen"
        browser.execute_script("document.getElementById('output-panel').scrollIntoView()")
        _screenshot(browser, artifacts, "serve-phone.png")
    finally:
        browser.set_window_size(*DESKTOP)
