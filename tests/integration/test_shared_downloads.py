"""Downloads from a bucket shared with the caller (its objects streamed through the API,
``SyncMethods._stream_to``) are written as every download is: into a new temp file beside
the target, checked against the sha256 the API answers (``X-Dfs-Sha256``) and the object's
size, fsync'ed, renamed, the directory fsync'ed; bytes that do not check out, and an answer
cut short, leave the target as it was and no temp file behind."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dfs.client import Client
from dfs.client.target_dirs import TargetDirs
from dfs.errors import DfsError, IntegrityError, Unreachable
from tests.fsync_trace import record_fsyncs
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens, tree
from tests.local_app import serving

pytestmark = pytest.mark.integration


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*dfs-part*"))


async def test_a_grantees_download_is_fsynced_renamed_and_dated(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = inproc.api.url
    alice, bob = await tokens(url, "alice", "bob")
    src = tmp_path / "src"
    files = tree(src)
    async with Client(url, token=alice) as a, Client(url, token=bob) as b:
        await a.make_bucket("photos")
        await a.upload_to([src], "photos", "2024/")
        await a.set_bucket("photos", grants={"bob": "read"})
        out = tmp_path / "bob"
        synced = record_fsyncs(monkeypatch)
        got = await b.download_from("photos", "2024/", out)
    assert sorted(d["key"] for d in got.done) == sorted(f"2024/{k}" for k in files)
    assert _leftovers(out) == []
    for name, data in files.items():
        target = out / name
        assert target.read_bytes() == data
        assert abs(target.stat().st_mtime - (src / name).stat().st_mtime) < 1e-6
        # the temp file's bytes were made durable before it took the name, then the rename
        temps = [p for p in synced if p.startswith(f"{target.parent}/.{target.name}.")]
        assert [p.endswith(".dfs-part") for p in temps] == [True], synced
        assert str(target.parent) in synced[synced.index(temps[0]) :], synced


async def test_an_empty_object_is_written_as_every_download(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty object links no file: an empty file, made durable before it takes the name
    (a link there replaced, not followed), dated as stored."""
    (alice,) = await tokens(inproc.api.url, "alice")
    out = tmp_path / "out"
    (out / "cfg").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("kept")
    (out / "cfg" / "a.txt").symlink_to(elsewhere)
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("cfgs")
        await a.link("cfgs", "cfg/a.txt", "", metadata={"mtime": "1700000000.5"})
        synced = record_fsyncs(monkeypatch)
        await a.download_from("cfgs", "", out)
    target = out / "cfg" / "a.txt"
    assert not target.is_symlink()
    assert target.read_bytes() == b""
    assert target.stat().st_mtime == 1700000000.5
    assert elsewhere.read_text() == "kept"
    assert _leftovers(out) == []
    temps = [p for p in synced if p.startswith(f"{out / 'cfg'}/.a.txt.")]
    assert len(temps) == 1, synced
    assert str(out / "cfg") in synced[synced.index(temps[0]) :], synced


BODY = b"the bytes the object holds\n" * 100
SHA = hashlib.sha256(BODY).hexdigest()


def _object(**changes: Any) -> dict[str, Any]:
    """A listed object of the bucket "shared" as the API describes it."""
    obj = {"bucket": "shared", "key": "docs/a.txt", "version_id": "v1", "file_id": "f1"}
    return {**obj, "size": len(BODY), "sha256": SHA, "metadata": {}, **changes}


def _api(body: bytes, answered_sha: str, declared: int | None = None) -> web.Application:
    """An API whose object GET answers ``body`` with ``answered_sha``; ``declared``: a
    Content-Length longer than the body, the connection dropped after it (a cut answer)."""

    async def get(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"X-Dfs-Sha256": answered_sha})
        resp.content_length = declared if declared is not None else len(body)
        await resp.prepare(request)
        await resp.write(body)
        if declared is not None:
            assert request.transport is not None
            request.transport.abort()
            return resp
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/objects/{bucket}/{key:.*}", get)
    return app


async def _stream(app: web.Application, obj: dict[str, Any], target: Path) -> None:
    """``obj`` streamed from ``app`` (an API's object GET) to ``target``, as a grantee's
    download streams each object."""
    async with serving(app) as port:
        url = f"http://127.0.0.1:{port}"
        async with Client(url, token="t", resume=False) as c:
            await c._stream_to(obj, target, True, TargetDirs(target.parent))


BAD = b"other bytes, of another length\n"


@pytest.mark.parametrize(
    ("body", "answered", "obj", "error"),
    [
        (BAD + BODY[len(BAD) :], SHA, _object(), IntegrityError),  # not the bytes answered
        (BODY, hashlib.sha256(b"x").hexdigest(), _object(), IntegrityError),  # nor the sha's
        (BAD, hashlib.sha256(BAD).hexdigest(), _object(), IntegrityError),  # the listing's
        (BODY, SHA, _object(size=len(BODY) + 1), IntegrityError),  # another size
        (BODY[:100], SHA, _object(), Unreachable),  # the answer cut short
    ],
    ids=["bytes", "answered-sha", "listed-sha", "size", "cut"],
)
async def test_bytes_that_do_not_check_out_are_never_written(
    tmp_path: Path, body: bytes, answered: str, obj: dict[str, Any], error: type[DfsError]
) -> None:
    declared = len(BODY) if error is Unreachable else None
    target = tmp_path / "out" / "a.txt"
    target.parent.mkdir()
    target.write_bytes(b"what was here before")
    with pytest.raises(error):
        await _stream(_api(body, answered, declared), obj, target)
    assert target.read_bytes() == b"what was here before"
    assert os.listdir(target.parent) == ["a.txt"]


async def test_bytes_that_check_out_replace_the_target(tmp_path: Path) -> None:
    """The fake API above, answering the object's bytes: written (so what it refuses, it
    refuses for the bytes)."""
    target = tmp_path / "out" / "a.txt"
    target.parent.mkdir()
    target.write_bytes(b"what was here before")
    await _stream(_api(BODY, SHA), _object(metadata={"mtime": "1700000000.25"}), target)
    assert target.read_bytes() == BODY
    assert target.stat().st_mtime == 1700000000.25
    assert os.listdir(target.parent) == ["a.txt"]
