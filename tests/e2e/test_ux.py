"""What a user touches, with real processes: curl against the seed endpoints, directory
uploads and downloads, an interrupted upload resumed, and the CLI's --json discipline."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster, console_script, wait_for
from tests.e2e.conftest import cli_json, run_cli

pytestmark = pytest.mark.e2e

MIB = 1 << 20


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "60", *args],
        capture_output=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_curl_upload_409_and_signed_download(cluster: LocalCluster, tmp_path: Path) -> None:
    src = tmp_path / "seed.bin"
    data = random.Random(3).randbytes(3 * MIB + 17)
    src.write_bytes(data)
    auth = f"Authorization: Bearer {cluster.admin_token}"
    raw = curl(
        "-H", auth, "--data-binary", f"@{src}", f"{cluster.api_url}/upload?filename=seed.bin"
    )
    first = json.loads(raw.stdout)
    assert first["sha256"] == hashlib.sha256(data).hexdigest()
    again = curl(
        "-H", auth, "-w", "\\n%{http_code}", "-F", f"file=@{src}", f"{cluster.api_url}/upload"
    )
    body, status = again.stdout.decode().rsplit("\n", 1)
    assert status == "409"
    assert json.loads(body)["file_id"] == first["file_id"]
    link = json.loads(curl("-H", auth, f"{cluster.api_url}/download/{first['file_id']}").stdout)
    assert link["filename"] == "seed.bin"
    assert link["size"] == len(data)
    out = tmp_path / "fetched.bin"
    got = curl("-f", "-o", str(out), link["download_url"])  # no token
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == data
    # the CLI's check finds it; a changed byte is new content
    [found] = cli_json("check", cluster.api_url, str(src))
    assert found["exists"] is True
    assert found["file"]["file_id"] == first["file_id"]
    src.write_bytes(data[:-1] + b"\x00")
    new = run_cli("check", "--json", cluster.api_url, str(src), check=False)
    assert new.returncode == 10  # not stored: outside the error codes 1-7
    assert json.loads(new.stdout)["exists"] is False


def test_directory_round_trip_and_cli_commands(cluster: LocalCluster, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    rng = random.Random(11)
    files: dict[str, bytes] = {}
    for i in range(60):
        rel = f"d{i % 4}/sub{i % 3}/f{i}.bin"
        files[rel] = rng.randbytes(rng.randint(1, 20_000))
    files["big/one.bin"] = rng.randbytes(9 * MIB)  # beyond the batch threshold
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    ups = cli_json("upload", "--prefix", "tree/", cluster.api_url, str(root))
    assert sorted(u["name"] for u in ups) == sorted(f"tree/{r}" for r in files)
    out = tmp_path / "back"
    proc = run_cli("download", "--json", "--prefix", "tree/", cluster.api_url, str(out))
    downs = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout: JSON only
    assert len(downs) == len(files)
    for rel, data in files.items():
        assert (out / "tree" / rel).read_bytes() == data
    assert not list(out.rglob("*.dfs-part*"))
    # into a folder made empty beforehand (its first chunks read early, as into a new one)
    empty = tmp_path / "empty"
    empty.mkdir()
    run_cli("download", "--quiet", "--prefix", "tree/", cluster.api_url, str(empty))
    for rel, data in files.items():
        assert (empty / "tree" / rel).read_bytes() == data
    # ls pages, stat, verify, hashes
    listed = cli_json("ls", "--all", "--limit", "7", cluster.api_url)
    assert len([f for f in listed if "file_id" in f]) == len(files)
    [meta] = cli_json("stat", cluster.api_url, ups[0]["file_id"])
    assert meta["name"] == ups[0]["name"]
    [report] = cli_json("verify", cluster.api_url, ups[-1]["file_id"])
    assert report["healthy"] is True
    page = cli_json("hashes", "--limit", "5", cluster.api_url)
    assert len(page[0]["hashes"]) <= 5
    assert page[0]["next_page"]
    # errors keep their documented exit codes
    missing = run_cli("stat", cluster.api_url, "00000000-0000-4000-8000-000000000000", check=False)
    assert missing.returncode == 4
    assert missing.stdout == ""


def test_interrupted_upload_resumes_sending_the_rest(cluster: LocalCluster, tmp_path: Path) -> None:
    cache = Path(os.environ["DFS_CACHE_DIR"])  # the autouse fixture's, per test
    src = tmp_path / "resume.bin"
    data = random.Random(5).randbytes(64 * MIB)
    src.write_bytes(data)
    chunks = 64  # fixed 1 MiB chunks
    proc = subprocess.Popen(
        [
            console_script("dfs-client"),
            "upload",
            "--quiet",
            "--chunk-size",
            str(MIB),
            "--concurrency",
            "2",
            cluster.api_url,
            str(src),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:

        def receipts() -> int:
            journals = list((cache / "uploads").glob("*.jsonl"))
            if not journals:
                return 0
            return sum(1 for line in journals[0].read_text().splitlines() if '"c"' in line)

        # kill the CLI once the nodes have acknowledged about half the chunks
        wait_for(lambda: receipts() >= chunks // 2 or None, 120.0, "half the chunks sent")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    done_before = receipts()
    assert done_before < chunks  # really interrupted
    started = time.monotonic()
    [up] = cli_json("upload", "--chunk-size", str(MIB), cluster.api_url, str(src))
    assert time.monotonic() - started < 300
    assert up["sha256"] == hashlib.sha256(data).hexdigest()
    assert up["bytes_sent"] <= (chunks - done_before) * MIB
    assert up["bytes_sent"] < 0.55 * len(data)
    assert not list((cache / "uploads").glob("*.jsonl"))  # journal removed
    out = tmp_path / "resumed.bin"
    run_cli("download", cluster.api_url, up["file_id"], str(out))
    assert out.read_bytes() == data
