"""Headless Chromium for the browser tests and benchmarks/browser.py: what is missing, and a driver to start.

Needs Debian's `chromium` and `chromium-driver` (`make browser-deps`) and the `selenium` package. A test calls
`require_browser(...)` at import: without them it is skipped with a loud reason, except under CI=true, where it
fails: CI must run the browser tests.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")
DRIVER_NAME = "chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
ARTIFACTS_ENV = "ENLARGE_TEST_ARTIFACTS"  # where screenshots go (CI keeps them); else pytest's temporary folder
DEFAULT_WAIT_S = 300.0  # the longest any one driver command may take, unless the caller says otherwise
INSTALL_HINT = "Install with `make browser-deps` (apt-get install chromium chromium-driver) and `pip install selenium`."


def missing_browser_parts() -> list[str]:
    """What of chromium, chromedriver and selenium is not installed here."""
    missing = []
    if not any(shutil.which(name) for name in CHROMIUM_NAMES):
        missing.append("chromium")
    if not shutil.which(DRIVER_NAME):
        missing.append("chromium-driver (chromedriver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return missing


def require_browser(missing: list[str], hint: str = INSTALL_HINT) -> None:
    """Skip the calling module (fail under CI=true) when anything in `missing` is absent."""
    if not missing:
        return
    message = f"BROWSER TEST NOT RUN: {', '.join(missing)} missing. {hint}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " CI must run this test.")
    pytest.skip(message, allow_module_level=True)


def start_chromium(profile: Path, downloads: Path, window: tuple[int, int], flags: tuple[str, ...] = (),
                   wait_s: float = DEFAULT_WAIT_S):
    """A Selenium driver of headless Chromium with its own profile, saving downloads into `downloads`, that waits
    up to `wait_s` for any one command: its HTTP client, scripts and page loads (chromedriver gives up on a renderer
    that does not answer within the page-load wait, 300 s by default: "Timed out receiving message from
    renderer"), so a long run is cut off by the caller's own deadline, not by the driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(name) for name in CHROMIUM_NAMES if shutil.which(name))
    for flag in (*CHROMIUM_FLAGS, *flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})  # console; CDP events
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which(DRIVER_NAME)))
    driver.command_executor._client_config.timeout = wait_s  # selenium's client; no public setter in 4.x
    driver.set_script_timeout(wait_s)
    driver.set_page_load_timeout(wait_s)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def requested_urls(driver, document_prefix: str) -> list[str]:
    """Every URL requested since the last call by documents whose address starts with `document_prefix` (from the
    CDP Network events in the log; the browser's own start page is left out that way)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent" and params.get("documentURL", "").startswith(
            document_prefix
        ):
            urls.append(params["request"]["url"])
    return urls


def artifacts_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $ENLARGE_TEST_ARTIFACTS if set, else a temporary folder; never the repository."""
    named = os.environ.get(ARTIFACTS_ENV)
    folder = Path(named) if named else tmp_path_factory.mktemp("artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
