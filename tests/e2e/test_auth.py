"""Auth with real processes: the bootstrap admin token, tenants and tokens through the CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from dfs.api.registry import TOKEN_CACHE_SECONDS
from dfs.localcluster import LocalCluster, Proc, console_script, http_json, wait_for
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


def test_tokens_listed_whoami_and_revoked_on_every_api_process(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """Through the CLI: create a token, list it, whoami, revoke it; a second API process on the
    same metadata store refuses it within the token cache's lifetime."""
    url = cluster.api_url
    run_cli("admin", "create-tenant", url, "acme")
    created = json.loads(
        run_cli("admin", "create-token", "--json", "--label", "ci", url, "acme").stdout
    )
    token, token_id = created["token"], created["token_id"]
    listed = json.loads(run_cli("admin", "tokens", "--json", url, "acme").stdout)["tokens"]
    assert [(t["token_id"], t["role"], t["label"]) for t in listed] == [(token_id, "user", "ci")]
    assert token not in run_cli("admin", "tokens", url).stdout  # ids only, never the text
    me = json.loads(run_cli("whoami", "--json", url, "--token", token).stdout)
    assert me == {"tenant": "acme", "role": "user", "token_id": token_id, "label": "ci"}
    assert f"token {token_id}" in run_cli("whoami", url, "--token", token).stdout

    # a second API process on the same store, which has the token in its cache
    env = {**os.environ, **cluster.secrets, **cluster.env}
    env.update(
        {
            "DFS_META_URL": cluster.meta_url,
            "DFS_API_PORT": "0",
            "DFS_DATA_DIR": str(tmp_path / "api2"),
            "DFS_MAINTENANCE": "0",
        }
    )
    api2 = Proc("api2", [console_script("dfs-api")], env, tmp_path / "api2.log", tmp_path / "p")
    api2.start()
    try:
        url2 = api2.wait_listening(30)
        assert run_cli("whoami", "--json", url2, "--token", token).returncode == 0
        assert run_cli("admin", "revoke", url, token_id).stdout.strip() == token_id
        revoked_at = time.monotonic()
        refused = run_cli("whoami", url, "--token", token, check=False)  # at once where revoked
        assert refused.returncode == 3, refused.stderr
        assert "invalid token" in refused.stderr

        def refused_by_api2() -> bool:
            return run_cli("whoami", url2, "--token", token, check=False).returncode == 3

        wait_for(refused_by_api2, TOKEN_CACHE_SECONDS + 10, "the second API to refuse")
        assert time.monotonic() - revoked_at < TOKEN_CACHE_SECONDS + 10
        assert token_id not in run_cli("admin", "tokens", url).stdout
        assert run_cli("admin", "revoke", url, token_id, check=False).returncode == 4  # gone
    finally:
        api2.stop()
