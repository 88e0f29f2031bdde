"""Bucket (namespace) transfers through the real CLI against a real cluster, where they could
lose or misplace data: keys that map to one local path (``docs/report.txt`` and
``docs\\report.txt``, ``docs/./notes.txt`` and ``docs/notes.txt``) are refused rather than
written over each other; a key that cannot be written safely is skipped, not the whole
restore; an empty object is never written through a symbolic link at its target; and
``upload -L DIR bucket/prefix/`` follows the links inside DIR, as an upload by file id does.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dfs.client import Client
from dfs.localcluster import LocalCluster, http_json
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.e2e

PARTIAL = 23


def _tenant(c: LocalCluster, name: str) -> str:
    """A new tenant's token (by the API's routes: no CLI process for the set-up)."""
    http_json(f"{c.api_url}/admin/tenants", c.admin_token, 30.0, {"tenant": name})
    body = {"tenant": name, "role": "user", "label": ""}
    return str(http_json(f"{c.api_url}/admin/tokens", c.admin_token, 30.0, body)["token"])


def _cli(c: LocalCluster, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, check=False, env={"DFS_TOKEN": token, "DFS_API_URL": c.api_url})


async def _put(c: LocalCluster, token: str, bucket: str, objects: dict[str, bytes]) -> None:
    """A bucket holding ``objects`` (key -> bytes; b"" an empty object, no file), each key
    exactly as given, as any uploader (an S3 client) may name it."""
    async with Client(c.api_url, token=token, resume=False) as cl:
        await cl.make_bucket(bucket)
        for n, (key, data) in enumerate(objects.items()):
            file_id = ""
            if data:
                src = c.base / f"src-{bucket}-{n}"
                src.write_bytes(data)
                file_id = (await cl.upload(src)).file_id
            await cl.link(bucket, key, file_id)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _skipped(err: str) -> list[str]:
    return sorted(line for line in err.splitlines() if line.startswith("Skipped: "))


def _downloaded(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


KEYS = {
    "docs/report.txt": b"the real report\n",
    "docs\\report.txt": b"a different object\n",
    "docs/./notes.txt": b"notes A\n",
    "docs/notes.txt": b"notes B\n",
    "ok/plain.txt": b"a plain key\n",
    "ok/deeper/also.txt": b"another\n",
}


def test_keys_landing_on_one_path_are_refused_and_unsafe_ones_skipped(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = sqlite_cluster
    alice = _tenant(c, "alice")
    asyncio.run(_put(c, alice, "keysb", KEYS))
    for how in ((), ("--at", "2100-01-01")):  # the current objects, and those at a time
        out = tmp_path / f"restore{len(how)}"
        proc = _cli(c, alice, "download", "--json", *how, "keysb/", str(out))
        assert proc.returncode == PARTIAL, proc.stderr
        # the rest is restored, each object to a path of its own
        assert _tree(out) == {
            "ok/plain.txt": b"a plain key\n",
            "ok/deeper/also.txt": b"another\n",
        }
        done = _downloaded(proc.stdout)
        assert sorted(d["key"] for d in done) == ["ok/deeper/also.txt", "ok/plain.txt"]
        skipped = _skipped(proc.stderr)
        assert len(skipped) == 4, proc.stderr
        for key in ("docs/report.txt", "docs\\\\report.txt", "docs/./notes.txt", "docs/notes.txt"):
            [line] = [s for s in skipped if s.startswith(f"Skipped: {key}: ")]
            assert "would be written to" in line, line
            assert str(out / "docs") in line, line
        assert "4 files skipped (see above); the rest downloaded" in proc.stderr


def test_unsafe_keys_and_a_file_in_a_folders_way_are_skipped(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    """``docs//stray.txt`` is ``docs/stray.txt`` in the whole bucket (as a download by file id
    writes that name) and ``/stray.txt``, an absolute name, under ``docs/``: skipped there,
    not the restore, as is a key that would escape the folder; a key ``ok`` beside
    ``ok/plain.txt`` cannot be a file where a folder must be: skipped, the folder restored."""
    c = sqlite_cluster
    alice = _tenant(c, "alice")
    objects = {
        "docs//stray.txt": b"stray\n",
        "docs/fine.txt": b"fine\n",
        "docs/../../escape.txt": b"never outside the folder\n",
        "ok": b"in the way\n",
        "ok/plain.txt": b"plain\n",
    }
    asyncio.run(_put(c, alice, "strayb", objects))
    out = tmp_path / "all"
    proc = _cli(c, alice, "download", "strayb/", str(out))
    assert proc.returncode == PARTIAL, proc.stderr
    assert _tree(out) == {
        "docs/fine.txt": b"fine\n",
        "docs/stray.txt": b"stray\n",
        "ok/plain.txt": b"plain\n",
    }
    escape, ok = _skipped(proc.stderr)
    assert escape.startswith("Skipped: docs/../../escape.txt: cannot be written safely"), escape
    assert ok.startswith("Skipped: ok: "), ok
    assert "must be a directory, for 'ok/plain.txt'" in ok
    docs = tmp_path / "docs"
    proc = _cli(c, alice, "download", "strayb/docs/", str(docs))
    assert proc.returncode == PARTIAL, proc.stderr
    assert _tree(docs) == {"fine.txt": b"fine\n"}
    assert _skipped(proc.stderr) == [
        f"Skipped: docs/../../escape.txt: cannot be written safely under {docs}: "
        "'../../escape.txt' is an empty or absolute name, or has '..' or NUL",
        f"Skipped: docs//stray.txt: cannot be written safely under {docs}: "
        "'/stray.txt' is an empty or absolute name, or has '..' or NUL",
    ]
    assert "2 files skipped (see above); the rest downloaded" in proc.stderr
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path.parent / "escape.txt").exists()


def test_an_empty_object_is_never_written_through_a_link(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = sqlite_cluster
    alice = _tenant(c, "alice")
    asyncio.run(_put(c, alice, "emptyb", {"cfg/settings.txt": b"", "cfg/other.txt": b""}))
    out = tmp_path / "restore"
    (out / "cfg").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("my real settings, edited since\n")
    (out / "cfg" / "settings.txt").symlink_to(elsewhere)
    proc = _cli(c, alice, "download", "emptyb/", str(out))
    assert proc.returncode == 0, proc.stderr
    assert elsewhere.read_text() == "my real settings, edited since\n"
    for name in ("settings.txt", "other.txt"):
        got = out / "cfg" / name
        assert not got.is_symlink()
        assert got.read_bytes() == b""
    assert sorted(p.name for p in (out / "cfg").iterdir()) == ["other.txt", "settings.txt"]


def test_upload_dash_l_into_a_bucket_follows_links(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = sqlite_cluster
    alice = _tenant(c, "alice")
    outside = tmp_path / "outside"
    (outside / "d").mkdir(parents=True)
    (outside / "secret.txt").write_text("linked file")
    (outside / "d" / "inner.txt").write_text("in a linked folder")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "ok.txt").write_text("ok")
    (tree / "file-link").symlink_to(outside / "secret.txt")
    (tree / "dir-link").symlink_to(outside / "d")
    assert _cli(c, alice, "mb", "linkb/").returncode == 0
    proc = _cli(c, alice, "upload", "--json", "-L", str(tree), "linkb/pre/")
    assert proc.returncode == 0, proc.stderr
    keys = sorted(d["key"] for d in _downloaded(proc.stdout))
    assert keys == ["pre/dir-link/inner.txt", "pre/file-link", "pre/ok.txt"]
    # without -L the links are skipped and reported, as before
    proc = _cli(c, alice, "upload", str(tree), "linkb/plain/")
    assert proc.returncode == PARTIAL, proc.stderr
    assert len(_skipped(proc.stderr)) == 2
