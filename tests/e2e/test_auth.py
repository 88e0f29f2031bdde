"""Auth with real processes: the bootstrap admin token, tenants and tokens through the CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster, Proc, console_script, http_json
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.e2e

SECRET = "e2e-cluster-secret-0123456789abcdef0123"


def api_proc(base: Path) -> Proc:
    env = {k: v for k, v in os.environ.items() if k not in ("DFS_ADMIN_TOKEN", "DFS_META_URL")}
    env.update(
        {
            "DFS_CLUSTER_SECRET": SECRET,
            "DFS_DATA_DIR": str(base / "api"),
            "DFS_API_PORT": "0",
            "DFS_META_URL": f"sqlite:///{base / 'meta.db'}",
        }
    )
    return Proc("api", [console_script("dfs-api")], env, base / "api.log", base / "api.pid")


def test_admin_token_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    proc = api_proc(tmp_path)
    proc.start()
    try:
        url = proc.wait_listening(30)
        log = proc.log.read_text()
        assert "generated the admin token (shown once" in log
        token_file = tmp_path / "api" / "admin_token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert token in log
        assert http_json(f"{url}/admin/tenants", token) == {"tenants": []}
    finally:
        proc.stop()
    proc.start()
    try:
        url = proc.wait_listening(30)
        assert proc.log.read_text().count("generated the admin token") == 1
        assert http_json(f"{url}/admin/tenants", token) == {"tenants": []}
    finally:
        proc.stop()


def test_missing_cluster_secret_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DFS_CLUSTER_SECRET"}
    env.update({"DFS_DATA_DIR": str(tmp_path), "NODE_PORT": "0"})
    done = subprocess.run(
        [console_script("dfs-node")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 78
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("dfs-node: invalid configuration: DFS_CLUSTER_SECRET=")
    )


def test_tenants_through_the_cli(cluster: LocalCluster, tmp_path: Path) -> None:
    api = cluster.api_url
    for name in ("acme", "globex"):
        assert run_cli("admin", "create-tenant", api, name).stdout.strip() == name
    token_a = run_cli("admin", "create-token", api, "acme", "--label", "ci").stdout.strip()
    created = json.loads(run_cli("admin", "create-token", "--json", api, "globex").stdout)
    token_b = created["token"]
    assert created["role"] == "user"
    assert token_a.startswith("dfs_")
    assert token_b.startswith("dfs_")
    src = tmp_path / "doc.txt"
    src.write_text("acme's plans\n" * 1000)
    file_id = run_cli("upload", api, str(src), env={"DFS_TOKEN": token_a}).stdout.strip()
    # globex, with its token from a config file: the file does not exist for it
    config = tmp_path / "config.toml"
    config.write_text(f'token = "{token_b}"\n')
    as_b = {"DFS_TOKEN": None, "DFS_CONFIG": str(config)}
    proc = run_cli("download", api, file_id, str(tmp_path / "x"), check=False, env=as_b)
    assert proc.returncode == 4
    assert "no file" in proc.stderr
    # a user token cannot administer
    proc = run_cli("admin", "tenants", api, check=False, env=as_b)
    assert proc.returncode == 3
    assert proc.stderr.startswith("Error: this endpoint is for admins")
    # --token beats the environment
    out = tmp_path / "back.txt"
    run_cli("download", "--token", token_a, api, file_id, str(out), env=as_b)
    assert out.read_text() == src.read_text()
    # no token at all: exit 3
    proc = run_cli(
        "download",
        api,
        file_id,
        str(out),
        check=False,
        env={"DFS_TOKEN": None, "DFS_CONFIG": str(tmp_path / "none.toml")},
    )
    assert proc.returncode == 3
    assert "missing bearer token" in proc.stderr
