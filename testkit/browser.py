"""A headless Chromium for UI tests: Debian's ``chromium`` driven by its ``chromedriver``.

Nothing downloads a browser: :func:`chromium_paths` installs Debian's ``chromium`` and
``chromium-driver`` with apt-get when they are missing (root only, as
:mod:`testkit.processes` does for PostgreSQL and Redis), and :func:`headless_chromium`
hands Selenium that ``chromedriver`` through its ``Service`` with ``SE_OFFLINE=true``,
so Selenium Manager never looks for one. The browser starts with a fresh profile and
without Chromium's own background traffic (component updates, sync, safe browsing...).

:class:`Browser` wraps the driver with what the tests need around it: numbered
screenshots of every step and the browser console's errors.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from testkit.processes import TopologyError, _apt_install

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Chromium switches: headless, no sandbox (root in CI), no background networking.
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-default-apps",
                 "--window-size=1440,1000")


def chromium_paths() -> tuple[Path, Path]:
    """``/usr/bin/chromium`` and ``/usr/bin/chromedriver``; installed with apt when missing.

    :raises TopologyError: when they are missing and cannot be installed.
    """
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _apt_install("chromium", "chromium-driver")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise TopologyError(f"{CHROMIUM} or {CHROMEDRIVER} is missing after installing "
                            "chromium and chromium-driver")
    return CHROMIUM, CHROMEDRIVER


def headless_chromium(profile: Path, extra_args: Iterable[str] = ()) -> Any:
    """A Selenium Chrome driver on Debian's Chromium, with a fresh profile in ``profile``.

    :param profile: an empty folder for ``--user-data-dir``.
    :param extra_args: further Chromium switches.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never download a driver
    chromium, chromedriver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in (*CHROMIUM_ARGS, f"--user-data-dir={profile}", *extra_args):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(chromedriver),
                      log_output=str(profile.parent / "chromedriver.log"))
    return webdriver.Chrome(options=options, service=service)


class Browser:
    """A headless Chromium that screenshots each step and collects console errors.

    :param folder: where the profile, the screenshots and the driver's log go.
    :param extra_args: further Chromium switches.
    """

    def __init__(self, folder: Path, extra_args: Iterable[str] = ()) -> None:
        self.folder = Path(folder)
        self.shots = self.folder / "screenshots"
        self.shots.mkdir(parents=True, exist_ok=True)
        self._profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=self.folder))
        self.driver = headless_chromium(self._profile, extra_args)
        self.driver.set_page_load_timeout(60)
        self.console: list[dict[str, Any]] = []
        self._step = 0

    def shot(self, name: str) -> Path:
        """Save a screenshot named ``NN-name.png`` and collect the console so far.

        :param name: what the step shows.
        """
        self._step += 1
        path = self.shots / f"{self._step:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.read_console(name)
        return path

    def read_console(self, step: str) -> list[dict[str, Any]]:
        """The console entries logged since the last read, each tagged with ``step``.

        :param step: the step they belong to.
        """
        entries = [{**entry, "step": step, "url": self.driver.current_url}
                   for entry in self.driver.get_log("browser")]
        self.console.extend(entries)
        return entries

    def errors(self, ignore: Iterable[str] = ()) -> list[dict[str, Any]]:
        """The console's ``SEVERE`` entries whose message holds none of ``ignore``.

        :param ignore: substrings of messages that are expected.
        """
        skip = tuple(ignore)
        return [e for e in self.console if e.get("level") == "SEVERE"
                and not any(s in str(e.get("message", "")) for s in skip)]

    def close(self) -> None:
        """Quit the browser and remove its profile."""
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)
