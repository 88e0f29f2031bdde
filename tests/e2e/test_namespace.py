"""Issue 13's done-when test: a namespace people can live in, through the real CLI against
a real cluster (processes on loopback), on each metadata backend.

A directory tree goes into ``photos/2024/``, is listed folder by folder, a file is
overwritten (two versions) and the first version restored; a folder is copied and another
moved without any chunk traffic (the nodes' byte counters do not move); files are tagged
and found by tag; one object is made public and fetched with a plain HTTP GET and no token;
the bucket is shared read-only with a second tenant (who reads, cannot write, and sees no
other bucket); ``du`` and per-type usage match the truth computed from the tree.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dfs.localcluster import LocalCluster, http_json
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.e2e

METRICS_TOKEN = "dfs_e2e-namespace-metrics-token-0123456789abcdef"
CHUNK_ROUTES = ("/store-chunk", "/get-chunk", "/read-chunks", "/store-chunks")

TREE = {
    "a.jpg": 40_000,
    "b.png": 3_000,
    "notes.txt": 120,
    "trip/c.jpg": 70_000,
    "trip/d.jpg": 5_000,
    "trip/deep/e.txt": 64,
    "misc/f.bin": 9_000,
    "misc/g.jpg": 1_000,
}


def as_user(token: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, check=check, env={"DFS_TOKEN": token})


def user_json(token: str, *args: str) -> list[dict[str, Any]]:
    out = as_user(token, *args, "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def make_tree(root: Path) -> dict[str, bytes]:
    rng = random.Random(2024)
    files = {}
    for name, size in TREE.items():
        data = rng.randbytes(size)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        files[name] = data
    return files


def chunk_traffic(cluster: LocalCluster) -> float:
    """Body bytes in and out of the chunk routes of every node (their /metrics)."""
    total = 0.0
    for node in http_json(f"{cluster.api_url}/nodes", cluster.admin_token)["nodes"]:
        req = urllib.request.Request(f"{node['url']}/metrics")
        req.add_header("Authorization", f"Bearer {METRICS_TOKEN}")
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read().decode()
        for m in re.finditer(
            r'^dfs_http_(?:request|response)_bytes_total\{route="([^"]*)"\} (\S+)$', text, re.M
        ):
            if m.group(1).startswith(CHUNK_ROUTES):
                total += float(m.group(2))
    return total


def tenant(cluster: LocalCluster, name: str) -> str:
    api = cluster.api_url
    run_cli("admin", "create-tenant", api, name)
    return run_cli("admin", "create-token", api, name).stdout.strip()


def usage_truth(versions: dict[str, list[int]], current: set[str]) -> dict[str, dict[str, int]]:
    """Per top-level prefix: current objects and logical bytes of every version."""
    out: dict[str, dict[str, int]] = {}
    for key, sizes in versions.items():
        top = key.split("/")[0] if "/" in key else ""
        u = out.setdefault(top, {"objects": 0, "versions": 0, "logical_bytes": 0})
        u["objects"] += key in current
        u["versions"] += len(sizes)
        u["logical_bytes"] += sum(sizes)
    return out


def by_type(versions: dict[str, list[int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, sizes in versions.items():
        name = key.rsplit("/", 1)[-1]
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        out[ext] = out.get(ext, 0) + sum(sizes)
    return out


@pytest.mark.cluster(env={"DFS_METRICS_TOKEN": METRICS_TOKEN})
def test_a_namespace_people_can_live_in(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = tenant(cluster, "alice"), tenant(cluster, "bob")
    monkeypatch.setenv("DFS_API_URL", cluster.api_url)  # the grammar: no URL argument
    made = as_user(alice, "mb", "--versioning", "photos/", check=False)
    assert made.returncode == 0, made.stderr  # both backends have the namespace
    src = tmp_path / "tree"
    files = make_tree(src)
    up = user_json(alice, "upload", str(src), "photos/2024/")
    assert sorted(u["key"] for u in up) == sorted(f"2024/{k}" for k in TREE)
    again = user_json(alice, "upload", str(src), "photos/2024/")
    assert all("unchanged" in u for u in again), again  # rsync's rule: same size and mtime

    # run where a local folder is named like a bucket: the last path is still the bucket's
    # (a note says so), unless --prefix makes it an upload by name; ./scratch/ is the folder
    as_user(alice, "mb", "scratch/")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "local.txt").write_bytes(b"a local file")
    into = as_user(alice, "upload", "--json", str(src / "b.png"), "scratch/")
    assert "Note: scratch/ is taken as the remote path" in into.stderr
    assert [json.loads(x)["key"] for x in into.stdout.splitlines()] == ["b.png"]
    by_name = as_user(alice, "upload", "--json", "--prefix", "n/", str(src / "b.png"), "scratch/")
    assert [json.loads(x)["name"] for x in by_name.stdout.splitlines()] == [
        "n/b.png",
        "n/local.txt",
    ]
    assert "Note" not in by_name.stderr
    local = as_user(alice, "upload", "--json", str(src / "b.png"), "./scratch/")
    assert [json.loads(x)["name"] for x in local.stdout.splitlines()] == ["b.png", "local.txt"]
    assert "Note" not in local.stderr
    (tmp_path / "scratch" / "other.txt").write_bytes(b"another")  # a glob's files: by name
    files_only = as_user(alice, "upload", "--json", "scratch/local.txt", "scratch/other.txt")
    assert [json.loads(x)["name"] for x in files_only.stdout.splitlines()] == [
        "local.txt",
        "other.txt",
    ]
    as_user(alice, "rm", "scratch/b.png")
    as_user(alice, "rb", "scratch/")

    # folder by folder: folders first, then objects
    top = user_json(alice, "ls", "photos/2024/")
    assert [e.get("prefix") for e in top[:2]] == ["2024/misc/", "2024/trip/"]
    assert [e["key"] for e in top[2:]] == ["2024/a.jpg", "2024/b.png", "2024/notes.txt"]
    trip = user_json(alice, "ls", "photos/2024/trip/")
    assert [e.get("prefix") or e["key"] for e in trip] == [
        "2024/trip/deep/",
        "2024/trip/c.jpg",
        "2024/trip/d.jpg",
    ]
    text = as_user(alice, "ls", "photos/2024/").stdout.splitlines()
    assert text[0].split()[0] == "DIR"
    assert text[0].endswith("misc/")

    # overwrite a file: two versions; restore the first
    first_backup = time.time()
    (src / "a.jpg").write_bytes(b"second version")
    user_json(alice, "upload", str(src / "a.jpg"), "photos/2024/a.jpg")
    overwritten = time.time()
    versions = user_json(alice, "ls", "--versions", "photos/2024/a.jpg")
    assert [v["size"] for v in versions] == [len(b"second version"), TREE["a.jpg"]]
    as_user(alice, "restore", "photos/2024/a.jpg", "--version", versions[1]["version_id"])
    as_user(alice, "download", "photos/2024/a.jpg", str(tmp_path / "restored.jpg"))
    assert (tmp_path / "restored.jpg").read_bytes() == files["a.jpg"]

    # the folder as it was at a time (ISO 8601 or Unix seconds), between the versions
    then = tmp_path / "then"
    iso = datetime.fromtimestamp(overwritten, UTC).isoformat()
    as_user(alice, "download", "--at", iso, "photos/2024/", str(then))
    assert (then / "a.jpg").read_bytes() == b"second version"
    as_user(alice, "download", "--at", str(first_backup), "photos/2024/", str(then))
    assert {str(p.relative_to(then)): p.read_bytes() for p in then.rglob("*") if p.is_file()} == (
        files
    )
    bad = as_user(alice, "download", "--at", "yesterday", "photos/2024/", str(then), check=False)
    assert bad.returncode == 2, bad.stderr
    assert "'yesterday' is not a time" in bad.stderr

    # copy a folder and move another: metadata only, not one chunk byte on any node
    before = chunk_traffic(cluster)
    copied = user_json(alice, "cp", "photos/2024/trip/", "photos/copy/")
    moved = user_json(alice, "mv", "photos/2024/misc/", "photos/moved/")
    assert len(copied) == 3
    assert len(moved) == 2
    assert chunk_traffic(cluster) == before
    assert user_json(alice, "ls", "photos/2024/misc/") == []
    got = tmp_path / "moved"
    as_user(alice, "download", "photos/moved/", str(got))
    assert (got / "f.bin").read_bytes() == files["misc/f.bin"]

    # tags, and finding by tag
    as_user(alice, "tag", "photos/2024/trip/c.jpg", "kind=landscape", "year=2024")
    as_user(alice, "tag", "photos/copy/d.jpg", "kind=landscape")
    found = user_json(alice, "find", "photos/", "--tag", "kind=landscape")
    assert sorted(o["key"] for o in found) == ["2024/trip/c.jpg", "copy/d.jpg"]

    # one public object: a plain GET, no token, inert headers
    as_user(alice, "share", "photos/2024/b.png", "--public")
    public_url = f"{cluster.api_url}/objects/photos/2024/b.png"
    if shutil.which("curl"):  # the done-when test says plain curl: when it is installed
        fetched = subprocess.run(
            ["curl", "-fsS", public_url], capture_output=True, check=True, timeout=30
        )
        assert fetched.stdout == files["b.png"]
    with urllib.request.urlopen(public_url, timeout=10) as r:
        assert r.read() == files["b.png"]
        assert r.headers["Content-Disposition"].startswith("attachment")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in r.headers["Content-Security-Policy"]
    for private in ("photos/2024/notes.txt", "photos/2024/nothing-here"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{cluster.api_url}/objects/{private}", timeout=10)
        refused.value.close()  # the error holds the answer's socket
        assert refused.value.code == 404  # refused and missing look alike

    # a second tenant: nothing of alice's, then read-only access to photos/
    as_user(alice, "mb", "diary/")
    assert user_json(bob, "buckets") == []
    assert as_user(bob, "ls", "photos/", check=False).returncode == 4
    as_user(alice, "share", "photos/", "--read", "bob")
    assert [b["name"] for b in user_json(bob, "buckets")] == ["photos"]
    as_user(bob, "download", "photos/2024/trip/", str(tmp_path / "bob"))
    assert (tmp_path / "bob" / "deep" / "e.txt").read_bytes() == files["trip/deep/e.txt"]
    denied = as_user(bob, "upload", str(src / "notes.txt"), "photos/bob.txt", check=False)
    assert denied.returncode == 3, denied.stderr
    assert as_user(bob, "rm", "photos/2024/b.png", check=False).returncode == 3
    assert as_user(bob, "ls", "diary/", check=False).returncode == 4

    # du and per-type usage against the truth from the tree
    sizes: dict[str, list[int]] = {f"2024/{k}": [v] for k, v in TREE.items()}
    sizes["2024/a.jpg"] = [TREE["a.jpg"], len(b"second version"), TREE["a.jpg"]]
    for k in ("c.jpg", "d.jpg", "deep/e.txt"):
        sizes[f"copy/{k}"] = [TREE[f"trip/{k}"]]
    for k in ("f.bin", "g.jpg"):
        sizes[f"moved/{k}"] = [TREE[f"misc/{k}"]]
    current = set(sizes) - {"2024/misc/f.bin", "2024/misc/g.jpg"}
    du = user_json(alice, "du", "photos/")[0]["usage"]
    truth = usage_truth(sizes, current)
    assert {
        k: {f: u[f] for f in ("objects", "versions", "logical_bytes")} for k, u in du.items()
    } == truth
    types = user_json(alice, "du", "--by", "type", "photos/")[0]["usage"]
    assert {k: u["logical_bytes"] for k, u in types.items()} == by_type(sizes)
    total = user_json(alice, "du")[0]
    assert total["logical_bytes"] == sum(map(sum, sizes.values()))
    assert 0 < total["stored_bytes"] <= total["logical_bytes"]
    assert os.environ.get("DFS_TOKEN")  # the admin's; the tenants' were passed explicitly
