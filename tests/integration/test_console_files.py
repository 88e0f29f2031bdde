"""The web console's static files (dfs.api.routes_console): served without a token, each with
the console's strict Content-Security-Policy; anything else under /ui/ is a sandboxed 404.
The browser itself is tested in tests/browser."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import aiohttp
import pytest

import dfs.console
from dfs.api.routes_console import CONSOLE_CSP, load_static
from dfs.api.user_content import SANDBOX
from tests.integration.conftest import InProcessCluster

pytestmark = pytest.mark.integration

SHIPPED = {
    "index.html",
    "app.js",
    "app.css",
    "api.js",
    "browse.js",
    "upload.js",
    "hash-worker.js",
    "dashboard.js",
    "chart.js",
    "vendor/js-sha256/sha256.min.mjs",
}


def test_the_package_ships_the_console() -> None:
    files = load_static()
    assert set(files) >= SHIPPED
    assert files["app.js"][1].startswith("text/javascript")
    index = files["index.html"][0].decode()
    assert '<script type="module" src="app.js"></script>' in index
    assert "<script>" not in index  # no inline script: the policy forbids it anyway


def test_a_wheel_ships_every_console_file() -> None:
    """Every file in static/ matches a package-data pattern of pyproject.toml."""
    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["dfs.console"]
    static = Path(dfs.console.__file__).parent / "static"
    for f in static.rglob("*"):
        if f.is_dir():
            continue
        name = f"static/{f.relative_to(static).as_posix()}"
        assert any(fnmatch.fnmatch(name, p) for p in patterns), f"{name} would not ship"


async def test_console_files_need_no_token_and_carry_a_strict_policy(
    inproc: InProcessCluster,
) -> None:
    async with aiohttp.ClientSession() as s:
        for name in ("", "index.html", "app.js", "app.css", "vendor/js-sha256/sha256.min.mjs"):
            async with s.get(f"{inproc.api.url}/ui/{name}") as r:
                assert r.status == 200, name
                assert r.headers["Content-Security-Policy"] == CONSOLE_CSP
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["X-Frame-Options"] == "DENY"
        assert "script-src 'self'" in CONSOLE_CSP
        assert "frame-ancestors 'none'" in CONSOLE_CSP
        assert "unsafe" not in CONSOLE_CSP
        async with s.get(f"{inproc.api.url}/ui", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"] == "/ui/"
        for name in (
            "../app.py",
            "%2e%2e/context.py",
            "nope.js",
            "__init__.py",
            "vendor/js-sha256/LICENSE.txt",
            "vendor/js-sha256/README.md",
            "vendor/nope/sha256.min.mjs",
            "vendor/js-sha256/deeper/sha256.min.mjs",
        ):
            async with s.get(f"{inproc.api.url}/ui/{name}") as r:
                assert r.status in (404, 401), name  # a normalized ../ leaves /ui/: a token
                assert r.headers["Content-Security-Policy"] == SANDBOX
        async with s.post(f"{inproc.api.url}/ui/app.js") as r:
            assert r.status == 401  # only reads are open
