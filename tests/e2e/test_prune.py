"""``dfs-client prune`` on a real cluster (both metadata backends): a folder backed up twice
into a versioned bucket and a file deleted between (``ls --at`` shows the folder at each
time), then the old snapshot forgotten. A dry run lists what would go and changes nothing; the prune removes exactly that; the current
folder downloads as before; the files no version links any more are collected, so the
cluster stores less by exactly their bytes; a bad time or both times at once exit 2."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster
from tests.e2e.conftest import http_json, run_cli
from tests.e2e.test_namespace import as_user, tenant

pytestmark = pytest.mark.e2e

FAST_GC = {"DFS_GC_GRACE": "3", "DFS_GC_INTERVAL": "0.5"}
DEADLINE = 60.0


def write_tree(root: Path, seed: int, names: list[str]) -> dict[str, bytes]:
    """Files of bytes no other file holds (so each one's chunks are its own)."""
    rng = random.Random(seed)
    out = {}
    for name in names:
        data = rng.randbytes(rng.randrange(2000, 9000))
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        out[name] = data
    return out


def lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in stdout.splitlines() if x.strip()]


@pytest.mark.cluster(env=FAST_GC)
def test_prune_forgets_an_old_snapshot(cluster: LocalCluster, tmp_path: Path) -> None:
    alice = tenant(cluster, "alice")
    api = cluster.api_url
    as_user(alice, "mb", "--versioning", api, "snaps/")
    src = tmp_path / "src"
    first = write_tree(src, 1, ["a.txt", "b.txt", "docs/c.txt", "docs/d.txt"])
    as_user(alice, "upload", api, str(src), "snaps/home/")
    t1 = str(time.time())
    edited = write_tree(src, 2, ["a.txt", "docs/c.txt"])  # new bytes under two keys
    as_user(alice, "upload", api, str(src), "snaps/home/")
    as_user(alice, "rm", api, "snaps/home/b.txt")
    (src / "b.txt").unlink()
    when = datetime.fromtimestamp(time.time(), UTC).isoformat()
    listed = as_user(alice, "ls", "--json", "--versions", "-r", api, "snaps/").stdout

    # the folder as it was: at t1 the first sizes and b.txt; later, b.txt gone
    then = lines(as_user(alice, "ls", "--json", "--at", t1, api, "snaps/home/").stdout)
    assert [(e.get("prefix"), e.get("key"), e.get("size")) for e in then] == [
        ("home/docs/", None, None),
        (None, "home/a.txt", len(first["a.txt"])),
        (None, "home/b.txt", len(first["b.txt"])),
    ]
    deep = lines(as_user(alice, "ls", "--json", "-r", "--at", t1, api, "snaps/home/").stdout)
    assert {e["key"]: e["size"] for e in deep} == {f"home/{k}": len(d) for k, d in first.items()}
    later = lines(as_user(alice, "ls", "--json", "-r", "--at", when, api, "snaps/home").stdout)
    assert [e["key"] for e in later] == ["home/a.txt", "home/docs/c.txt", "home/docs/d.txt"]
    both = as_user(alice, "ls", "--versions", "--at", t1, api, "snaps/", check=False)
    assert both.returncode == 2, both.stderr

    dry = as_user(alice, "prune", "--json", "--dry-run", "--before", when, api, "snaps/home/")
    *gone, summary = lines(dry.stdout)
    assert sorted((o["key"], o["is_delete_marker"]) for o in gone) == [
        ("home/a.txt", False),
        ("home/b.txt", False),
        ("home/b.txt", True),
        ("home/docs/c.txt", False),
    ]
    freed = len(first["a.txt"]) + len(first["b.txt"]) + len(first["docs/c.txt"])
    assert summary == {
        "dry_run": True,
        "before": datetime.fromisoformat(when).timestamp(),
        "versions": 3,
        "delete_markers": 1,
        "bytes": freed,
        "kept": 3,
    }
    assert as_user(alice, "ls", "--json", "--versions", "-r", api, "snaps/").stdout == listed

    stored = http_json(f"{api}/admin/stats", cluster.admin_token)["stored_bytes"]
    done = as_user(alice, "prune", "--before", when, api, "snaps/home/")
    assert sorted(x.split("\t")[1] for x in done.stdout.splitlines()[:-1]) == [
        "snaps/home/a.txt",
        "snaps/home/b.txt",
        "snaps/home/b.txt",
        "snaps/home/docs/c.txt",
    ]
    assert done.stdout.splitlines()[-1].startswith("removed 3 versions")
    now = lines(as_user(alice, "ls", "--json", "--versions", "-r", api, "snaps/").stdout)
    assert sorted(o["key"] for o in now) == ["home/a.txt", "home/docs/c.txt", "home/docs/d.txt"]

    out = tmp_path / "out"
    as_user(alice, "download", api, "snaps/home/", str(out))
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == {
        "a.txt": edited["a.txt"],
        "docs/c.txt": edited["docs/c.txt"],
        "docs/d.txt": first["docs/d.txt"],
    }

    # the removed versions' files go, and with them their chunks: the cluster stores less
    deadline = time.monotonic() + DEADLINE
    while http_json(f"{api}/admin/stats", cluster.admin_token)["stored_bytes"] > stored - freed:
        assert time.monotonic() < deadline, "the pruned versions' chunks were not collected"
        time.sleep(0.2)
    assert http_json(f"{api}/admin/stats", cluster.admin_token)["stored_bytes"] == stored - freed


def test_prune_refuses_what_is_no_time(sqlite_cluster: LocalCluster) -> None:
    api = sqlite_cluster.api_url
    token = sqlite_cluster.admin_token
    both = run_cli("prune", "--before", "1", "--keep-within", "1d", api, "b/", check=False)
    assert both.returncode == 2, both.stderr
    assert "one of --before TIME and --keep-within DURATION" in both.stderr
    bad = run_cli("prune", "--keep-within", "a month", api, "b/", check=False, env={})
    assert bad.returncode == 2, bad.stderr
    assert "'a month' is not a length of time" in bad.stderr
    env: dict[str, str | None] = {"DFS_TOKEN": token}
    missing = run_cli("prune", "--keep-within", "1d", api, "nosuch/", check=False, env=env)
    assert missing.returncode == 4, missing.stderr
    assert "nosuch" in missing.stderr
