"""A link sent again makes no second version (in process, SQLite): ``PUT /objects`` with
``unless_current`` (what ``Client.link`` sends, and sends again when the API gave no answer)
answers 200 with the version the first one made; a ``/finalize-upload`` with a key sent again
(its answer lost) answers the first one's version; a read-write grantee's link, whose file
the first one cloned, likewise. Without the flag a link is a new version every time."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dfs.client import Client
from tests.integration.conftest import InProcessCluster
from tests.integration.test_grantee_files import _auth, _finalize, _shared
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


async def _put(
    s: aiohttp.ClientSession, url: str, token: str, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with s.put(f"{url}/objects/{path}", json=body, headers=_auth(token)) as r:
        return r.status, await r.json()


async def _versions(c: Client, bucket: str, key: str) -> list[dict[str, Any]]:
    page = await c.list_page(bucket, key, versions=True)
    return [o for o in page["objects"] if o["key"] == key]


async def test_a_link_sent_again_answers_the_first_version(inproc: InProcessCluster) -> None:
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    async with Client(url, token=alice) as c, aiohttp.ClientSession() as s:
        await c.make_bucket("docs", versioning="enabled")
        file_id, status, _ = await _finalize(c, s, url, b"linked twice")
        assert status == 200
        body = {"file_id": file_id, "unless_current": True}
        first = await _put(s, url, alice, "docs/a", body)
        again = await _put(s, url, alice, "docs/a", body)
        assert (first[0], again[0]) == (201, 200)
        assert again[1]["object"] == first[1]["object"]
        assert again[1]["released_file_id"] is None
        assert len(await _versions(c, "docs", "a")) == 1
        # the library sends it by default; unless_current=False is a version every time
        linked = await c.link("docs", "a", file_id)
        assert linked["object"]["version_id"] == first[1]["object"]["version_id"]
        await c.link("docs", "a", file_id, unless_current=False)
        assert len(await _versions(c, "docs", "a")) == 2
        # refused: with sha256 (a new file record each time), or not a boolean
        both = {"sha256": "ab" * 32, "unless_current": True}
        assert (await _put(s, url, alice, "docs/b", both))[0] == 400
        assert (await _put(s, url, alice, "docs/b", {"unless_current": "yes"}))[0] == 400


async def test_a_finalize_with_a_key_sent_again_makes_one_version(
    inproc: InProcessCluster,
) -> None:
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    async with Client(url, token=alice) as c, aiohttp.ClientSession() as s:
        await c.make_bucket("docs", versioning="enabled")
        data = b"finalized twice"
        digest = hashlib.sha256(data).hexdigest()
        chunks = [{"sha256": digest, "size": len(data)}]
        plan = await c.api.init_upload(
            name="n.bin", size=len(data), sha256=digest, chunker="fixed:65536", chunks=chunks
        )
        put = await c.api.proxy_put_chunk(digest, data, file_id=plan["file_id"])
        body = {
            "file_id": plan["file_id"],
            "receipts": {digest: put["receipt"]},
            "bucket": "docs",
            "key": "n.bin",
        }
        answers = []
        for _ in range(2):  # the second as a client sends it when the first answer was lost
            async with s.post(f"{url}/finalize-upload", json=body, headers=_auth(alice)) as r:
                assert r.status == 200
                answers.append(await r.json())
        assert answers[1]["object"] == answers[0]["object"]
        assert len(await _versions(c, "docs", "n.bin")) == 1


async def test_a_grantees_link_sent_again_makes_one_version(inproc: InProcessCluster) -> None:
    url = inproc.api.url
    alice, bob = await _shared(url)  # "shared" is alice's, versioned; bob may write
    async with Client(url, token=bob) as b, aiohttp.ClientSession() as s:
        file_id, status, _ = await _finalize(b, s, url, b"bob's bytes")
        assert status == 200
        body = {"file_id": file_id, "unless_current": True, "tags": {"by": "bob"}}
        first = await _put(s, url, bob, "shared/k", body)
        again = await _put(s, url, bob, "shared/k", body)
        assert (first[0], again[0]) == (201, 200)
        assert first[1]["object"]["file_id"] != file_id  # alice's clone
        assert again[1]["object"] == first[1]["object"]
        # other fields are another version
        other = await _put(s, url, bob, "shared/k", {**body, "tags": {"by": "bob", "n": "2"}})
        assert other[0] == 201
    async with Client(url, token=alice) as a:
        assert len(await _versions(a, "shared", "k")) == 2


async def test_a_grantees_entries_among_the_owners_in_one_request(
    inproc: InProcessCluster,
) -> None:
    """``/objects-link`` from a read-write grantee: its file is cloned into the owner's (the
    entry runs on its own), its empty object goes with the batch; sent again, nothing new."""
    url = inproc.api.url
    alice, bob = await _shared(url)
    async with Client(url, token=bob) as b, aiohttp.ClientSession() as s:
        file_id, status, _ = await _finalize(b, s, url, b"bob's batch")
        assert status == 200
        entries: list[dict[str, Any]] = [{"key": "g/file", "file_id": file_id}, {"key": "g/dir/"}]
        first = await b.link_many("shared", entries)
        again = await b.link_many("shared", entries)
    assert [a["made"] for a in first] == [True, True]
    assert [a["made"] for a in again] == [False, False]
    assert first[0]["object"]["file_id"] != file_id  # alice's clone
    assert [a["object"] for a in again] == [a["object"] for a in first]
    async with Client(url, token=alice) as a, aiohttp.ClientSession() as s:
        assert len(await _versions(a, "shared", "g/file")) == 1
        async with s.get(f"{url}/objects/shared/g/file", headers=_auth(alice)) as r:
            assert (r.status, await r.read()) == (200, b"bob's batch")


async def test_a_delete_sent_again_adds_no_second_marker(inproc: InProcessCluster) -> None:
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    async with Client(url, token=alice) as c, aiohttp.ClientSession() as s:
        await c.make_bucket("docs", versioning="enabled")
        for key in ("a", "b/1", "b/2"):
            file_id, status, _ = await _finalize(c, s, url, key.encode())
            assert status == 200
            await c.link("docs", key, file_id)
        first = await c.remove("docs", "a")
        again = await c.remove("docs", "a")
        assert first["version"]["is_delete_marker"]
        assert again["version"] == first["version"]
        assert (await c.remove("docs", "never"))["version"] is None
        assert len(await _versions(c, "docs", "a")) == 2  # the version and one marker
        assert await c.remove_prefix("docs", "b/") == 2
        assert await c.remove_prefix("docs", "b/") == 0  # sent again: nothing current
        assert len((await c.list_page("docs", "b/", versions=True, delimiter=""))["objects"]) == 4
        # as S3 does, without the flag: a marker every time
        await c.remove("docs", "a", unless_deleted=False)
        assert len(await _versions(c, "docs", "a")) == 3
        async with s.delete(f"{url}/objects/docs/a?unless_deleted=1", headers=_auth(alice)) as r:
            assert r.status == 400


async def test_many_keys_linked_in_one_request(inproc: InProcessCluster) -> None:
    """``POST /objects-link``: each entry answered on its own (a refused one costs only
    itself), in order; sent again, the same versions; a bad request refused whole."""
    url = inproc.api.url
    alice, bob = await tokens(url, "alice", "bob")
    async with (
        Client(url, token=alice) as c,
        Client(url, token=bob) as b,
        aiohttp.ClientSession() as s,
    ):
        await c.make_bucket("many", versioning="enabled")
        ids = []
        for i in range(5):
            file_id, status, _ = await _finalize(c, s, url, f"file {i}".encode())
            assert status == 200
            ids.append(file_id)
        bobs, status, _ = await _finalize(b, s, url, b"bob's")
        assert status == 200
        entries: list[dict[str, Any]] = [
            {"key": f"k/{i}", "file_id": fid, "tags": {"n": str(i)}} for i, fid in enumerate(ids)
        ]
        entries.insert(2, {"key": "k/bobs", "file_id": bobs})  # not alice's file: refused
        entries.append({"key": "k/folder/"})  # an empty object
        first = await c.link_many("many", entries)
        assert [a.get("object", {}).get("key") for a in first] == [
            "k/0",
            "k/1",
            None,
            "k/2",
            "k/3",
            "k/4",
            "k/folder/",
        ]
        assert first[2]["key"] == "k/bobs"
        assert first[2]["error"]["code"] == "file_not_found"
        assert [a["object"]["tags"] for a in first if "object" in a][:5] == [
            {"n": str(i)} for i in range(5)
        ]
        again = await c.link_many("many", entries)  # as sent again after a lost answer
        assert [a.get("object") for a in again] == [a.get("object") for a in first]
        assert [a.get("made") for a in first] == [True, True, None, True, True, True, True]
        assert [a.get("made") for a in again] == [False, False, None, False, False, False, False]
        page = await c.list_page("many", "k/", versions=True, delimiter="")
        assert len(page["objects"]) == 6  # one version per key linked
        for i in range(5):
            async with s.get(f"{url}/objects/many/k/{i}", headers=_auth(alice)) as r:
                assert (r.status, await r.read()) == (200, f"file {i}".encode())

        async def post(token: str, body: dict[str, Any]) -> int:
            async with s.post(f"{url}/objects-link", json=body, headers=_auth(token)) as r:
                return r.status

        one = [{"key": "x", "file_id": ids[0]}]
        # entries refused one by one: a key named again, sha256, a bad key; the rest linked
        odd = [*one, *one, {"key": "y", "sha256": "ab" * 32}, {"key": "/" * 2000}, "z"]
        async with s.post(
            f"{url}/objects-link", json={"bucket": "many", "objects": odd}, headers=_auth(alice)
        ) as r:
            assert r.status == 200
            got = (await r.json())["objects"]
        assert got[0]["object"]["key"] == "x"
        assert got[0]["made"] is True
        assert [g["error"]["code"] for g in got[1:]] == ["invalid_request"] * 4
        assert [g["key"] for g in got[1:]] == ["x", "y", "/" * 2000, ""]
        assert await post(alice, {"bucket": "many", "objects": []}) == 400
        assert (
            await post(alice, {"bucket": "many", "objects": [{"key": f"{i}"} for i in range(1001)]})
            == 400
        )
        assert await post(bob, {"bucket": "many", "objects": one}) == 404  # not bob's to see
        assert await post(alice, {"bucket": "nowhere", "objects": one}) == 404
        async with s.post(f"{url}/objects-link", json={"bucket": "many", "objects": one}) as r:
            assert r.status == 401


async def test_two_local_files_for_one_key_the_last_wins(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """The same name in two folders given to one upload: one key, the last file's bytes,
    nothing refused and no file of the caller left behind."""
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    for folder, data in (("d1", b"first"), ("d2", b"second")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.txt").write_bytes(data)
    async with Client(url, token=alice) as c, aiohttp.ClientSession() as s:
        await c.make_bucket("twice", versioning="enabled")
        report = await c.upload_to([tmp_path / "d1", tmp_path / "d2"], "twice", "p/")
        assert [o["key"] for o in report.done] == ["p/a.txt"]
        assert len(await _versions(c, "twice", "p/a.txt")) == 1
        async with s.get(f"{url}/objects/twice/p/a.txt", headers=_auth(alice)) as r:
            assert await r.read() == b"second"
        async with s.get(f"{url}/files", headers=_auth(alice)) as r:
            assert [f["file_id"] for f in (await r.json())["files"]] == [report.done[0]["file_id"]]
