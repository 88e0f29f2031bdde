"""infra/systemd units and scripts/: `systemd-analyze verify`, the hardening the units promise,
and shellcheck on every script (the bootstrap scripts, the dev scripts and .ci/run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dfs.localcluster import console_script
from tests.deploy.conftest import REPO, SCRIPTS, SYSTEMD, tool, unit_file

pytestmark = pytest.mark.deploy

UNITS = {"dfs-api.service": "dfs-api", "dfs-node.service": "dfs-node", "dfs-s3.service": "dfs-s3"}
INSTALL_BIN = "/opt/dfs/venv/bin/"
DATA_DIR = "/var/lib/dfs"


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_is_hardened(name: str) -> None:
    unit = unit_file(SYSTEMD / name)
    svc = {k: v[-1] for k, v in unit["Service"].items()}
    assert svc["ExecStart"] == INSTALL_BIN + UNITS[name]
    assert svc["User"] == svc["Group"] == "dfs"
    assert svc["Restart"] == "on-failure"
    assert svc["EnvironmentFile"] == f"/etc/dfs/{name.split('-')[1].split('.')[0]}.env"
    assert svc["KillSignal"] == "SIGTERM"
    assert int(svc["TimeoutStopSec"]) >= 20  # node: deregister (5 s) + drain (10 s)
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": DATA_DIR,
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectHome": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
    }.items():
        assert svc.get(key) == value, key
    if name == "dfs-node.service":
        assert unit["Unit"]["RequiresMountsFor"] == [DATA_DIR]


@pytest.mark.slow
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """verify needs ExecStart's binary to exist: point it at this venv's console scripts."""
    bindir = str(Path(console_script("dfs-api")).parent) + "/"
    paths = []
    for name in sorted(UNITS):
        text = (SYSTEMD / name).read_text()
        assert INSTALL_BIN in text
        path = tmp_path / name
        path.write_text(text.replace(INSTALL_BIN, bindir))
        paths.append(str(path))
    proc = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "dfs-" in line]
    assert not warnings, proc.stderr  # nothing about our units (others' may warn)


def test_every_script_passes_shellcheck() -> None:
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert {"bootstrap_api.sh", "bootstrap_node.sh", "bootstrap_s3.sh", "test.sh"} <= {
        p.name for p in scripts
    }
    proc = subprocess.run(
        [tool("shellcheck"), "-x", *(str(p.relative_to(REPO)) for p in scripts), ".ci/run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
