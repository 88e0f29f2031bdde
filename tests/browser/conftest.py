"""Browser tests of the web console: Debian's ``chromium`` driven by Playwright, against a
real local cluster (the e2e fixtures: processes on loopback, every one stopped after).

No browser is downloaded: Playwright launches the system's ``chromium`` (``apt-get install
chromium``; scripts/ci-tools.sh installs it). Without it the tests are skipped, except under
CI, where a missing browser fails them. Screenshots go to ``DFS_SCREENSHOTS`` (default
``test-artifacts/screenshots/`` at the repository's root, which git ignores).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# the e2e fixtures: ``sqlite_cluster`` (API + 3 nodes on SQLite, the console's tests are about
# the page, not the store) and the hook that prints the processes' logs when a test failed
from tests.e2e.conftest import pytest_runtest_makereport, sqlite_cluster

try:
    from playwright.sync_api import Browser, sync_playwright
except ImportError:  # the test extra is not installed
    sync_playwright = None  # type: ignore[assignment]

__all__ = ["pytest_runtest_makereport", "sqlite_cluster"]

REPO = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None or sync_playwright is None:
        missing = "the chromium package" if path is None else "playwright (the test extra)"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need {missing}")
        pytest.skip(f"browser tests need {missing}")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # module scope: Playwright's sync API runs an event loop on this thread while it is
    # open, and the asyncio tests of later modules need the thread without one
    executable = _chromium()
    with sync_playwright() as p:
        # --no-sandbox: CI and these sessions run as root, where Chromium's sandbox cannot start
        b = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def screenshots() -> Path:
    folder = Path(os.environ.get("DFS_SCREENSHOTS") or REPO / "test-artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def axe_violations(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[Any]:
    """Run axe-core (vendored) in the page; the violations of the given impacts.

    The script goes in through the DevTools protocol (Playwright's ``evaluate``), which the
    page's Content-Security-Policy does not govern, so the console's policy stays strict."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate("async () => await window.axe.run(document)")
    return [v for v in result["violations"] if v.get("impact") in impacts]
