"""A read-write grantee writing an object through the API (``POST /upload?bucket=&key=``,
``/finalize-upload`` with ``bucket``/``key``) leaves no file of its own behind: the link
clones the grantee's file into the bucket owner's tenant, and the grantee's own file is
released (``dfs.api.object_files``), as PutObject and multipart already did. A file made
for a link that is refused goes too; a file the caller had before (found by content, or
committed by an earlier finalize) is never touched."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dfs.client import Client
from dfs.errors import DfsError
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _shared(url: str, grant: str = "read-write") -> tuple[str, str]:
    """Tokens of alice, owner of bucket "shared", and bob, granted ``grant`` on it."""
    alice, bob = await tokens(url, "alice", "bob")
    async with Client(url, token=alice) as a:
        await a.make_bucket("shared", versioning="enabled")
        await a.set_bucket("shared", grants={"bob": grant})
    return alice, bob


async def _status(s: aiohttp.ClientSession, url: str, token: str) -> int:
    async with s.get(url, headers=_auth(token)) as r:
        return r.status


async def _bobs_files(s: aiohttp.ClientSession, url: str, bob: str) -> list[dict[str, Any]]:
    async with s.get(f"{url}/files", headers=_auth(bob)) as r:
        assert r.status == 200
        files: list[dict[str, Any]] = (await r.json())["files"]
        return files


async def _finalize(
    c: Client, s: aiohttp.ClientSession, url: str, data: bytes, **target: str
) -> tuple[str, int, dict[str, Any]]:
    """An upload of ``data`` (one chunk, through the API proxy) finalized with ``target``:
    its file id, the finalize's status and answer."""
    digest = hashlib.sha256(data).hexdigest()
    plan = await c.api.init_upload(
        name="n.bin",
        size=len(data),
        sha256=digest,
        chunker="fixed:65536",
        chunks=[{"sha256": digest, "size": len(data)}],
    )
    put = await c.api.proxy_put_chunk(digest, data, file_id=plan["file_id"])
    body = {"file_id": plan["file_id"], "receipts": {digest: put["receipt"]}, **target}
    async with s.post(f"{url}/finalize-upload", json=body, headers=_auth(str(c.token))) as r:
        return str(plan["file_id"]), r.status, await r.json()


async def test_a_grantees_post_upload_leaves_no_file_of_the_grantee(
    inproc: InProcessCluster,
) -> None:
    url = inproc.api.url
    alice, bob = await _shared(url)
    data = b"bob writes into alice's bucket"
    q = {"filename": "b.txt", "bucket": "shared", "key": "from-bob/b.txt"}
    raw = {**_auth(bob), "Content-Type": "application/octet-stream"}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/upload", params=q, data=data, headers=raw) as r:
            assert r.status == 201
            done = await r.json()
        assert done["object"]["file_id"] != done["file_id"]  # the owner's clone
        assert await _status(s, f"{url}/file/{done['file_id']}", bob) == 404
        assert await _bobs_files(s, url, bob) == []
        async with s.get(f"{url}/objects/shared/from-bob/b.txt", headers=_auth(alice)) as r:
            assert (r.status, await r.read()) == (200, data)


async def test_a_grantees_finalize_with_a_key_leaves_no_file_of_the_grantee(
    inproc: InProcessCluster,
) -> None:
    url = inproc.api.url
    alice, bob = await _shared(url)
    data = b"bob finalizes under alice's key"
    async with Client(url, token=bob) as c, aiohttp.ClientSession() as s:
        file_id, status, done = await _finalize(c, s, url, data, bucket="shared", key="k")
        assert status == 200, done
        assert done["object"]["file_id"] != file_id
        assert await _status(s, f"{url}/file/{file_id}", bob) == 404
        assert await _bobs_files(s, url, bob) == []
        async with s.get(f"{url}/objects/shared/k", headers=_auth(alice)) as r:
            assert (r.status, await r.read()) == (200, data)


async def test_a_refused_link_deletes_the_file_finalized_for_it(
    inproc: InProcessCluster,
) -> None:
    """Bob may only read "shared": the finalize commits his file, the link is refused, and
    the file made for the object goes with the refusal."""
    url = inproc.api.url
    _alice, bob = await _shared(url, grant="read")
    async with Client(url, token=bob) as c, aiohttp.ClientSession() as s:
        file_id, status, done = await _finalize(c, s, url, b"refused", bucket="shared", key="k")
        assert status in (403, 404), done
        assert await _status(s, f"{url}/file/{file_id}", bob) == 404
        file_id, status, done = await _finalize(c, s, url, b"nowhere", bucket="none", key="k")
        assert status == 404, done
        assert await _status(s, f"{url}/file/{file_id}", bob) == 404
        assert await _bobs_files(s, url, bob) == []


async def test_a_file_committed_before_is_never_released(inproc: InProcessCluster) -> None:
    """A file the grantee committed first (a finalize without a key), finalized again with
    a key (a retry): the link clones it, the grantee's file stays; and the grantee's native
    file of the same bytes is never what its ``POST /upload`` with a key releases."""
    url = inproc.api.url
    _alice, bob = await _shared(url)
    data = b"bob's own bytes, kept"
    async with Client(url, token=bob) as c, aiohttp.ClientSession() as s:
        file_id, status, _ = await _finalize(c, s, url, data)
        assert status == 200
        body = {"file_id": file_id, "receipts": {}, "bucket": "shared", "key": "again"}
        async with s.post(f"{url}/finalize-upload", json=body, headers=_auth(bob)) as r:
            assert r.status == 200
            assert (await r.json())["object"]["file_id"] != file_id
        q = {"filename": "b.txt", "bucket": "shared", "key": "posted"}
        raw = {**_auth(bob), "Content-Type": "application/octet-stream"}
        async with s.post(f"{url}/upload", params=q, data=data, headers=raw) as r:
            assert r.status == 201
        assert await _status(s, f"{url}/file/{file_id}", bob) == 200
        assert [f["file_id"] for f in await _bobs_files(s, url, bob)] == [file_id]
        async with s.get(f"{url}/file/{file_id}", headers=_auth(bob)) as r:
            assert (await r.json())["size"] == len(data)


async def test_a_grantees_sync_leaves_no_file_of_the_grantee(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """``dfs-client sync`` links each file by its id: a grantee's is cloned into the owner's
    tenant, and the sync deletes its own (made for the object); a refused link too."""
    url = inproc.api.url
    alice, bob = await _shared(url)
    src = tmp_path / "b.bin"
    src.write_bytes(b"synced by bob" * 1000)
    async with Client(url, token=alice) as a:
        await a.make_bucket("readonly")
        await a.set_bucket("readonly", grants={"bob": "read"})
    async with Client(url, token=bob) as c, aiohttp.ClientSession() as s:
        sent = await c.upload_to([src], "shared", "from-bob/b.bin")
        [obj] = sent.done
        assert await _bobs_files(s, url, bob) == []
        async with s.get(f"{url}/objects/shared/from-bob/b.bin", headers=_auth(alice)) as r:
            assert (r.status, await r.read()) == (200, src.read_bytes())
        with pytest.raises(DfsError):
            await c.upload_to([src], "readonly", "b.bin")
        assert await _bobs_files(s, url, bob) == []
    assert obj["size"] == src.stat().st_size
