"""Deployment checks: the Terraform, the systemd units and the shell scripts.

The tools come from ``scripts/ci-tools.sh`` (``scripts/test.sh`` runs it): shellcheck and
systemd-analyze from apt, checkov in its own virtualenv ``.venv-checkov``. A missing tool fails
the test with the command that installs it, never skips it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "infra" / "terraform"
SYSTEMD = REPO / "infra" / "systemd"
SCRIPTS = REPO / "scripts"
CHECKOV_TIMEOUT = 600


LIB = "bootstrap_lib.sh"


def bootstrap_text(script: str) -> str:
    """What a bootstrap script runs: its own text and the library it sources (it must)."""
    text = (SCRIPTS / script).read_text()
    assert f'/{LIB}"' in text, script
    return text + (SCRIPTS / LIB).read_text()


def tool(name: str) -> str:
    local = REPO / ".venv-checkov" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `bash scripts/ci-tools.sh`")
    return found


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted ('"x"'); strip that, recursively."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__comments__"}
    return value


def load_terraform() -> dict[str, Any]:
    """Every top-level block of infra/terraform/*.tf, merged: {"resource": {type: {name: body}},
    "data": {...}, "variable": {name: body}, "output": {...}, "locals": {name: value}}."""
    merged: dict[str, Any] = {
        "resource": {},
        "data": {},
        "variable": {},
        "output": {},
        "locals": {},
    }
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as f:
            doc = unquote(hcl2.load(f))
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    merged[kind].setdefault(rtype, {}).update(named)
        for kind in ("variable", "output"):
            for block in doc.get(kind, []):
                merged[kind].update(block)
        for block in doc.get("locals", []):
            merged["locals"].update(block)
    return merged


@pytest.fixture(scope="session")
def terraform() -> dict[str, Any]:
    return load_terraform()


@pytest.fixture(scope="session")
def checkov_report() -> dict[str, Any]:
    """One checkov scan of infra/terraform per session (it takes 15-60 s)."""
    proc = subprocess.run(
        [tool("checkov"), "-d", str(TERRAFORM), "--compact", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=CHECKOV_TIMEOUT,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"},
    )
    # exit 1 means "some check failed"; the report says which
    assert proc.returncode in (0, 1), proc.stderr[-4000:]
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def unit_file(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as section -> key -> values (keys may repeat; comments dropped)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            out.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out
