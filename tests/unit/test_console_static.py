"""The web console's files read as text (no browser, no network): no markup sink or string
evaluation anywhere, the token only in sessionStorage and only in an Authorization header,
the hashing worker a module of this origin, the policy strict, and the vendored SHA-256
byte for byte the file whose hash its README pins (scripts/vendor-js-sha256.sh checked that
file against the npm tarball's published integrity; this test notices any later edit)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import dfs.console
from dfs.api.routes_console import CONSOLE_CSP

STATIC = Path(dfs.console.__file__).parent / "static"
OWN = sorted(p for p in STATIC.glob("*.js"))
SINKS = (
    "innerHTML",
    "outerHTML",
    "insertAdjacentHTML",
    "document.write",
    "eval(",
    "new Function",
    "javascript:",
    "srcdoc",
    "localStorage",
    "document.cookie",
    "postMessage(",  # only the worker's channel, checked below
)


def test_no_markup_sink_or_string_evaluation() -> None:
    assert OWN
    for path in OWN:
        text = path.read_text(encoding="utf-8")
        for sink in SINKS:
            if sink == "postMessage(" and path.name in ("hash.js", "hash-worker.js"):
                continue
            assert sink not in text, f"{path.name} uses {sink}"
        # a timer given a string is an eval
        assert not re.search(r"set(Timeout|Interval)\(\s*[\"'`]", text), path.name


def test_the_token_stays_in_session_storage_and_the_authorization_header() -> None:
    for path in OWN:
        text = path.read_text(encoding="utf-8")
        if path.name != "api.js":
            assert "dfs-console-token" not in text, path.name
        for line in text.splitlines():
            if "token()" in line and path.name == "api.js":
                assert "Bearer ${token()}" in line or "function token()" in line, line
    api = (STATIC / "api.js").read_text(encoding="utf-8")
    assert 'credentials: "omit"' in api
    assert 'redirect: "error"' in api


def test_the_worker_is_a_module_of_this_origin() -> None:
    workers = [
        line
        for path in OWN
        for line in path.read_text(encoding="utf-8").splitlines()
        if "new Worker(" in line
    ]
    assert workers == [
        '    worker = new Worker(new URL("./hash-worker.js", import.meta.url), { type: "module" });'
    ]
    worker = (STATIC / "hash-worker.js").read_text(encoding="utf-8")
    imports = re.findall(r'^import .* from "([^"]+)";', worker, re.MULTILINE)
    assert imports == ["./vendor/js-sha256/sha256.min.mjs"]


def test_the_policy_is_strict() -> None:
    directives = dict(d.split(" ", 1) for d in CONSOLE_CSP.split("; "))
    assert "unsafe" not in CONSOLE_CSP
    assert "blob:" not in CONSOLE_CSP
    for name in ("default-src", "script-src", "worker-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"


def test_the_vendored_sha256_is_the_pinned_file() -> None:
    folder = STATIC / "vendor" / "js-sha256"
    readme = (folder / "README.md").read_text(encoding="utf-8")
    [pinned] = re.findall(r"SHA-256 of `sha256.min.mjs`.*?`([0-9a-f]{64})`", readme, re.DOTALL)
    got = hashlib.sha256((folder / "sha256.min.mjs").read_bytes()).hexdigest()
    assert got == pinned
    script = (Path(__file__).resolve().parents[2] / "scripts" / "vendor-js-sha256.sh").read_text()
    assert "VERSION=1.0.0" in script
    assert "js-sha256 1.0.0" in readme
