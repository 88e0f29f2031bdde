"""The command line as a new user meets it (issue 16), through real subprocesses: where
requests go (host:port, profiles, DFS_API_URL), one-line usage errors, exit codes (check 10,
Ctrl-C 130), --help, shell completion, and the text output of stat, stats, nodes and uploads."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster, console_script, wait_for
from tests.e2e.conftest import cli_json, run_cli

pytestmark = pytest.mark.e2e

MIB = 1 << 20


def _one_error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: "), lines
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_usage_errors_and_bad_urls_print_one_line(tmp_path: Path) -> None:
    env: dict[str, str | None] = {"DFS_CONFIG": str(tmp_path / "none.toml"), "DFS_API_URL": None}
    line = _one_error_line(run_cli("upload", check=False, env=env), 2)
    assert "Missing argument" in line
    assert "dfs-client upload --help" in line
    _one_error_line(run_cli("ls", "--limit", "0", "h:1", check=False, env=env), 2)
    _one_error_line(run_cli("nosuchcommand", check=False, env=env), 2)
    line = _one_error_line(run_cli("ls", "ftp://127.0.0.1:21", check=False, env=env), 2)
    assert "unsupported URL scheme 'ftp'" in line
    line = _one_error_line(run_cli("ls", check=False, env=env), 2)
    assert "no API URL" in line
    line = _one_error_line(
        run_cli("ls", check=False, env={**env, "DFS_API_URL": "gopher://h:70"}), 2
    )
    assert "unsupported URL scheme 'gopher'" in line
    # host:port is http://host:port: nothing listens on port 9, so the cluster is unavailable
    line = _one_error_line(run_cli("stats", "127.0.0.1:9", check=False, env=env), 7)
    assert "http://127.0.0.1:9/" in line


def _complete(words: str, env: dict[str, str | None] | None = None) -> list[str]:
    """What bash completion offers for the last word of ``words`` (click's protocol)."""
    cword = str(len(words.split()) - 1)
    complete = {"_DFS_CLIENT_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword}
    return run_cli(env={**(env or {}), **complete}).stdout.split()


def test_help_shows_examples_exit_codes_and_completion() -> None:
    top = run_cli("--help").stdout
    assert "Examples:" in top
    assert re.search(r"^\s*10\s+check: the bytes are not stored", top, re.M)
    assert re.search(r"^\s*130\s+interrupted", top, re.M)
    assert "_DFS_CLIENT_COMPLETE=bash_source dfs-client" in top
    assert "Examples:" in run_cli("upload", "-h").stdout
    assert "Exits 0 if it does, 10 if not" in run_cli("check", "--help").stdout
    script = run_cli(env={"_DFS_CLIENT_COMPLETE": "bash_source"}).stdout
    assert "complete -o nosort -F" in script
    assert "plain,upload" in _complete("dfs-client up")


def test_config_profiles_file_and_completion(tmp_path: Path) -> None:
    cfg = tmp_path / "cfgdir" / "config.toml"
    env: dict[str, str | None] = {"DFS_CONFIG": str(cfg)}
    run_cli("config", "set", "local", "127.0.0.1:8080", "--token", "dfs_secret", env=env)
    run_cli("config", "set", "prod", "https://dfs.example.com", env=env)
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    listed = run_cli("config", "ls", env=env).stdout
    assert "dfs_secret" not in listed  # tokens are never printed
    assert re.search(r"^\* local\s+http://127.0.0.1:8080\s+token$", listed, re.M)
    run_cli("config", "use", "prod", env=env)
    rows = [json.loads(x) for x in run_cli("config", "ls", "--json", env=env).stdout.splitlines()]
    assert {r["name"]: r["default"] for r in rows} == {"local": False, "prod": True}
    assert "plain,local" in _complete("dfs-client config use l", env)
    run_cli("config", "rm", "prod", env=env)
    _one_error_line(run_cli("config", "use", "prod", check=False, env=env), 2)
    _one_error_line(run_cli("config", "set", "x", "ftp://h:1", check=False, env=env), 2)


def test_profiles_env_url_and_host_port(sqlite_cluster: LocalCluster, tmp_path: Path) -> None:
    api = sqlite_cluster.api_url
    host_port = api.removeprefix("http://")
    admin = sqlite_cluster.admin_token
    cfg = tmp_path / "config.toml"
    run_cli("admin", "create-tenant", host_port, "acme")  # host:port, the admin token
    user_token = run_cli("admin", "create-token", api, "acme").stdout.strip()
    # a profile with a user token, the default; no URL and no DFS_TOKEN on later commands
    as_profile: dict[str, str | None] = {"DFS_CONFIG": str(cfg), "DFS_TOKEN": None}
    run_cli("config", "set", "local", host_port, "--token", user_token, env=as_profile)
    src = tmp_path / "a.txt"
    src.write_text("profiles\n" * 100)
    file_id = run_cli("upload", str(src), env=as_profile).stdout.strip()
    out = tmp_path / "back.txt"
    run_cli("download", file_id, str(out), env=as_profile)
    assert out.read_text() == src.read_text()
    # the user tenant holds it: the admin tenant does not see it
    assert file_id in run_cli("ls", env=as_profile).stdout
    assert file_id not in run_cli("ls", api).stdout
    # DFS_API_URL (host:port) with DFS_TOKEN, no profile file
    by_env: dict[str, str | None] = {
        "DFS_CONFIG": str(tmp_path / "none.toml"),
        "DFS_API_URL": host_port,
        "DFS_TOKEN": user_token,
    }
    meta = json.loads(run_cli("stat", "--json", file_id, env=by_env).stdout)
    assert meta["file_id"] == file_id
    assert file_id in run_cli("ls", env=by_env).stdout
    # --profile names another profile; an explicit URL beats every profile
    run_cli("config", "set", "admin", api, "--token", admin, env=as_profile)
    assert "acme" in run_cli("admin", "tenants", "--profile", "admin", env=as_profile).stdout
    assert "acme" in run_cli("admin", "tenants", "-p", "admin", env=as_profile).stdout
    assert run_cli("admin", "tenants", check=False, env=as_profile).returncode == 3


def test_check_exit_codes_and_human_output(sqlite_cluster: LocalCluster, tmp_path: Path) -> None:
    api = sqlite_cluster.api_url
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "one.bin").write_bytes(random.Random(1).randbytes(300_000))
    (tree / "sub" / "two.txt").write_text("two\n")
    lines = run_cli("upload", "--prefix", "t/", api, str(tree)).stdout.splitlines()
    names = dict(line.split("\t") for line in lines)  # ID<TAB>NAME per file
    assert sorted(names.values()) == ["t/one.bin", "t/sub/two.txt"]
    single = run_cli("upload", api, str(tree / "one.bin")).stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", single)  # one file: just its id
    # check: 0 when stored, 10 when not
    stored = run_cli("check", api, str(tree / "one.bin"), check=False)
    assert stored.returncode == 0
    assert stored.stdout.startswith("exists: ")
    (tmp_path / "new.bin").write_bytes(b"never uploaded")
    new = run_cli("check", api, str(tmp_path / "new.bin"), check=False)
    assert new.returncode == 10
    assert new.stdout.startswith("new: ")
    assert new.stderr == ""
    # human units and dates as text, raw numbers with --json
    file_id = next(i for i, n in names.items() if n == "t/one.bin")
    text = run_cli("stat", api, file_id).stdout
    assert re.search(r"^size:\s+293.0 KiB \(300000 bytes\)$", text, re.M)
    assert re.search(r"^created:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", text, re.M)
    [raw] = cli_json("stat", api, file_id)
    assert raw["size"] == 300_000
    assert isinstance(raw["created_at"], float)
    stats = run_cli("stats", api).stdout
    assert re.search(r"^logical size:\s+[\d.]+ KiB$", stats, re.M)
    assert re.search(r"^dedup ratio:\s+[\d.]+x$", stats, re.M)
    assert isinstance(cli_json("stats", api)[0]["logical_bytes"], int)
    nodes = run_cli("nodes", api).stdout
    assert "3 live, replication factor 2" in nodes
    assert re.search(r"^node1\s+http://\S+\s+up\s+[\d.]+ (B|KiB|MiB)", nodes, re.M)
    assert re.search(r"\d+s ago$", nodes, re.M)
    [raw_nodes] = cli_json("nodes", api)
    assert isinstance(raw_nodes["nodes"][0]["last_heartbeat"], float)
    # a reader that closes the pipe early (`| head`) gets no error message
    reader = subprocess.Popen(
        [console_script("dfs-client"), "ls", api],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert reader.stdout is not None
    reader.stdout.close()
    _, err = reader.communicate(timeout=60)
    assert reader.returncode == 141
    assert err == b""


def test_ctrl_c_exits_130_and_rerun_resumes(sqlite_cluster: LocalCluster, tmp_path: Path) -> None:
    cache = Path(os.environ["DFS_CACHE_DIR"])
    src = tmp_path / "big.bin"
    data = random.Random(7).randbytes(48 * MIB)
    src.write_bytes(data)
    argv = [console_script("dfs-client"), "upload", "--quiet", "--chunk-size", str(MIB)]
    proc = subprocess.Popen(
        [*argv, "--concurrency", "2", sqlite_cluster.api_url, str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:

        def receipts() -> int:
            journals = list((cache / "uploads").glob("*.jsonl"))
            return (
                sum(1 for x in journals[0].read_text().splitlines() if '"c"' in x)
                if journals
                else 0
            )

        # looked at every 5 ms and signalled at once: on an idle machine the 48 chunks and
        # the finalize take a few tenths of a second, so a 50 ms look could see the upload
        # nearly done and the signal land after it ended (exit 0)
        wait_for(lambda: receipts() >= 4 or None, 120.0, "some chunks sent", 0.005)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        "Interrupted: run the same command again to resume where it stopped."
    ]
    assert out == ""
    sent_before = receipts()
    [up] = cli_json("upload", "--chunk-size", str(MIB), sqlite_cluster.api_url, str(src))
    assert up["size"] == len(data)
    assert up["bytes_sent"] <= len(data) - sent_before * MIB
