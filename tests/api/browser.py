"""A real headless Chromium (Debian's, driven by its own chromedriver) with the network cut off.

Host names other than the loopback resolve to nothing and every request the page makes is
logged, so a test can assert that no request left 127.0.0.1. The driver's path is given
explicitly: Selenium Manager never runs, nothing downloads a browser.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

#: Where screenshots go (docs/screenshots holds the ones a reviewer looks at).
SCREENSHOTS = Path(os.environ.get("KOLMATCH_SCREENSHOTS_DIR", "build/screenshots"))

LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "devtools"}


class Browser:
    """One Chromium session: open pages, run script, read the requests it made."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, url: str) -> None:
        self.requests()  # drop what earlier pages logged
        self.driver.get(url)

    def requests(self) -> list[str]:
        """URLs of the requests the browser sent since the last call."""
        urls = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                urls.append(msg["params"]["request"]["url"])
        return urls

    def outside_requests(self) -> list[str]:
        """The requests since the last call that went anywhere but 127.0.0.1."""
        out = []
        for url in self.requests():
            parts = urlsplit(url)
            if parts.scheme in LOCAL_SCHEMES:
                continue
            if parts.hostname != "127.0.0.1":
                out.append(url)
        return out

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


def chromium() -> Iterator[Browser]:
    """A headless Chromium, or a skip (a failure under ``CI=true``) when it is not installed."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        msg = "Debian's chromium and chromium-driver are not installed (scripts/chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--lang=en-US",
        # the network cut off: no name but the loopback resolves, and no proxy or
        # background service (updates, safe browsing, translation) may call out
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-proxy-server",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
