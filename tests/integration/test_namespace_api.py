"""The namespace routes and ``Client``'s namespace methods, in process: buckets, keys,
versions, copy/move as metadata, tags and search, access (public, grants, 404 for refused),
signed URLs, the user-content headers, usage (on SQLite; the e2e test runs both backends)."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from dfs.api.namespace_service import Namespace
from dfs.client import Client
from dfs.errors import BucketExists, BucketNotEmpty, BucketNotFound, Forbidden, KeyNotFound
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration


async def tokens(api_url: str, *names: str) -> list[str]:
    async with Client(api_url, token=ADMIN_TOKEN) as admin:
        out = []
        for name in names:
            await admin.api.create_tenant(name)
            out.append((await admin.api.create_token(name, "user", name))["token"])
        return out


def tree(root: Path) -> dict[str, bytes]:
    rng = random.Random(13)
    files = {
        "a.jpg": rng.randbytes(3000),
        "b.png": rng.randbytes(100),
        "trip/c.jpg": rng.randbytes(5000),
        "trip/d.txt": b"hello",
        "trip/deep/e.jpg": rng.randbytes(10),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


async def test_buckets_keys_versions_copy_and_access(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    url = inproc.api.url
    alice, bob = await tokens(url, "alice", "bob")
    src = tmp_path / "src"
    files = tree(src)
    async with Client(url, token=alice) as a, Client(url, token=bob) as b:
        await a.make_bucket("photos", versioning="enabled")
        with pytest.raises(BucketExists):  # taken by another tenant
            await b.make_bucket("photos")
        up = await a.upload_to([src], "photos", "2024/")
        assert sorted(o["key"] for o in up.done) == sorted(f"2024/{k}" for k in files)
        again = await a.upload_to([src], "photos", "2024/")
        assert not again.done
        assert len(again.unchanged) == len(files)

        top = [e async for e in a.list_all("photos", "2024/")]
        assert [e.get("prefix") for e in top if "prefix" in e] == ["2024/trip/"]
        assert sorted(e["key"] for e in top if "key" in e) == ["2024/a.jpg", "2024/b.png"]

        (src / "a.jpg").write_bytes(b"new bytes")
        await a.upload_to([src / "a.jpg"], "photos", "2024/a.jpg")
        versions = [e async for e in a.list_all("photos", "2024/a.jpg", versions=True)]
        assert len(versions) == 2
        old = versions[-1]["version_id"]
        await a.restore("photos", "2024/a.jpg", old)
        out = tmp_path / "out.jpg"
        await a.download_from("photos", "2024/a.jpg", out)
        assert out.read_bytes() == files["a.jpg"]

        copied = await a.copy("photos/2024/trip/", "photos/copy/", recursive=True)
        assert len(copied) == 3
        await a.copy("photos/copy/", "photos/moved/", recursive=True, move=True)
        assert [e async for e in a.list_all("photos", "copy/")] == []
        got = tmp_path / "moved"
        await a.download_from("photos", "moved/", got)
        assert (got / "deep/e.jpg").read_bytes() == files["trip/deep/e.jpg"]

        await a.update_object("photos", "2024/b.png", tags={"kind": "icon"})
        found = await a.find("photos", tag="kind=icon")
        assert [o["key"] for o in found["objects"]] == ["2024/b.png"]

        # bob sees nothing of alice's until she grants read
        with pytest.raises(BucketNotFound):
            await b.list_page("photos")
        refusals = []
        for bucket, key in (("photos", "2024/b.png"), ("photos", "nope"), ("nobucket", "zz9")):
            with pytest.raises(KeyNotFound) as refused:
                await b.object_info(bucket, key)
            refusals.append(refused.value.message.replace(bucket, "B").replace(key, "K"))
        assert len(set(refusals)) == 1  # refused, missing, no bucket: nothing tells them apart
        await a.set_bucket("photos", grants={"bob": "read"})
        assert [x["name"] for x in await b.list_buckets()] == ["photos"]
        shared = tmp_path / "shared"
        await b.download_from("photos", "2024/trip/", shared)
        assert (shared / "d.txt").read_bytes() == b"hello"
        with pytest.raises(Forbidden):
            await b.link("photos", "bob.txt")
        await a.make_bucket("inbox")
        await a.set_bucket("inbox", grants={"bob": "read-write"})
        sent = await b.upload_to([src / "b.png"], "inbox", "from-bob/")
        assert [o["key"] for o in sent.done] == ["from-bob/b.png"]
        await a.download_from("inbox", "from-bob/b.png", tmp_path / "from-bob.png")
        assert (tmp_path / "from-bob.png").read_bytes() == files["b.png"]
        assert (await a.usage("inbox"))["logical_bytes"] == len(files["b.png"])

        # one public object, fetched without a token: inert headers
        await a.update_object("photos", "2024/trip/d.txt", access="public-read")
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/objects/photos/2024/trip/d.txt") as r:
                assert r.status == 200
                assert await r.read() == b"hello"
                assert r.headers["Content-Disposition"].startswith("attachment")
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert "sandbox" in r.headers["Content-Security-Policy"]
            async with s.get(f"{url}/objects/photos/2024/b.png") as r:
                assert r.status == 404
            async with s.get(f"{url}/objects/photos/2024/nothing") as r:
                assert r.status == 404
            async with s.head(f"{url}/objects/photos/2024/trip/d.txt") as r:
                assert r.status == 200
                assert r.headers["Content-Length"] == "5"
                assert r.headers["X-Dfs-Version-Id"]
            auth = {"Authorization": f"Bearer {alice}"}
            first = f"{url}/objects/photos/2024/a.jpg?version={old}"
            async with s.get(first, headers={**auth, "Range": "bytes=10-19"}) as r:
                assert r.status == 206
                assert await r.read() == files["a.jpg"][10:20]
            signed = await a.object_url("photos", "2024/a.jpg", version=old)
            async with s.get(signed["download_url"]) as r:
                assert await r.read() == files["a.jpg"]

        usage = await a.usage("photos", by="prefix")
        assert set(usage["usage"]) >= {"2024", "moved"}
        assert (await a.usage())["objects"] >= len(files)


async def test_finalize_and_post_upload_link_keys(inproc: InProcessCluster) -> None:
    """An upload names its key at finalize (or in POST /upload): known bytes under a key are
    a new version sharing the manifest (201), never the seed's 409."""
    (alice,) = await tokens(inproc.api.url, "carol")
    data = b"the same bytes twice"
    digest = hashlib.sha256(data).hexdigest()
    async with Client(inproc.api.url, token=alice) as c, aiohttp.ClientSession() as s:
        await c.make_bucket("docs", versioning="enabled")
        plan = await c.api.init_upload(
            name="n.txt",
            size=len(data),
            sha256=digest,
            chunker="fixed:65536",
            chunks=[{"sha256": digest, "size": len(data)}],
        )
        put = await c.api.proxy_put_chunk(digest, data, file_id=plan["file_id"])
        body = {
            "file_id": plan["file_id"],
            "receipts": {digest: put["receipt"]},
            "bucket": "docs",
            "key": "a/n.txt",
            "tags": {"k": "v"},
        }
        headers = {"Authorization": f"Bearer {alice}"}
        async with s.post(f"{inproc.api.url}/finalize-upload", json=body, headers=headers) as r:
            done = await r.json()
        assert done["object"]["key"] == "a/n.txt"
        assert done["object"]["tags"] == {"k": "v"}
        assert done["object"]["content_type"] == "text/plain"
        q = {"filename": "n.txt", "bucket": "docs", "key": "a/n.txt"}
        raw = {**headers, "Content-Type": "application/octet-stream"}
        for _ in range(2):
            async with s.post(f"{inproc.api.url}/upload", params=q, data=data, headers=raw) as r:
                assert r.status == 201
        versions = await c.list_page("docs", "a/", versions=True)
        assert len(versions["objects"]) == 3
        assert {v["sha256"] for v in versions["objects"]} == {digest}
        # the seed's DELETE /file refuses a file that an object version links
        linked = f"{inproc.api.url}/file/{plan['file_id']}"
        async with s.delete(linked, headers=headers) as r:
            assert r.status == 409
            assert "linked by an object version" in (await r.json())["error"]["message"]
        async with s.get(linked, headers=headers) as r:
            assert r.status == 200
        async with s.get(f"{inproc.api.url}/objects/docs/a/n.txt", headers=headers) as r:
            assert (r.status, await r.read()) == (200, data)


async def test_folders_copies_into_folders_and_checksum_sync(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    dave, erin = await tokens(inproc.api.url, "dave", "erin")
    src = tmp_path / "src"
    files = tree(src)
    async with Client(inproc.api.url, token=dave) as c:
        await c.make_bucket("box")
        await c.link("box", "empty/")  # an empty folder
        top = await c.list_page("box")
        assert top["common_prefixes"] == ["empty/"]
        await c.upload_to([src / "b.png"], "box", "pics/")
        made = await c.copy("box/pics/b.png", "box/empty/")
        assert made[0]["key"] == "empty/b.png"
        out = tmp_path / "out"
        got = await c.download_from("box", "pics", out)  # a folder named without its "/"
        assert (out / "b.png").read_bytes() == files["b.png"]
        again = await c.download_from("box", "pics/", out, checksum=True)
        assert again.unchanged == [str(out / "b.png")]
        assert len(got.done) == 1
        with pytest.raises(KeyNotFound):
            await c.download_from("box", "nothing", out)
        async with Client(inproc.api.url, token=erin) as e:  # one object shared with erin
            with pytest.raises(KeyNotFound):
                await e.object_info("box", "pics/b.png")
            await c.update_object("box", "pics/b.png", shared_with=["erin"])
            await e.download_from("box", "pics/b.png", tmp_path / "erin.png")
            assert (tmp_path / "erin.png").read_bytes() == files["b.png"]
            with pytest.raises(BucketNotFound):
                await e.list_page("box")
        (src / "b.png").write_bytes(b"x" * len(files["b.png"]))  # same size, new bytes
        os.utime(src / "b.png", (0, (src / "b.png").stat().st_mtime))
        sent = await c.upload_to([src / "b.png"], "box", "pics/b.png", checksum=True)
        assert len(sent.done) == 1


async def test_versions_removed_for_good_and_buckets_removed_when_empty(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    (frank,) = await tokens(inproc.api.url, "frank")
    f = tmp_path / "v.txt"
    async with Client(inproc.api.url, token=frank) as c:
        await c.make_bucket("vers", versioning="enabled")
        for text in (b"one", b"second"):  # sizes differ: never skipped as unchanged
            f.write_bytes(text)
            await c.upload_to([f], "vers", "v.txt")
        marker = (await c.remove("vers", "v.txt"))["version"]
        assert marker["is_delete_marker"]
        with pytest.raises(KeyNotFound):
            await c.object_info("vers", "v.txt")
        with pytest.raises(BucketNotEmpty):
            await c.remove_bucket("vers")
        versions = (await c.list_page("vers", versions=True))["objects"]
        assert len(versions) == 3
        for v in versions:
            await c.remove("vers", "v.txt", version=v["version_id"])
        await c.remove_bucket("vers")
        assert await c.list_buckets() == []


async def test_keys_with_dot_segments_name_themselves(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """x/../keep.txt is its own key through the client: a URL library drops dot segments
    from a path, so without care its link, info and rm would reach keep.txt instead."""
    (gina,) = await tokens(inproc.api.url, "gina")
    keep, trap = tmp_path / "keep.txt", tmp_path / "trap.txt"
    keep.write_bytes(b"keep me")
    trap.write_bytes(b"a trap, longer")
    async with Client(inproc.api.url, token=gina) as c:
        await c.make_bucket("dots")
        await c.upload_to([keep], "dots", "keep.txt")
        await c.upload_to([trap], "dots", "x/../keep.txt")
        assert (await c.object_info("dots", "x/../keep.txt"))["size"] == len(b"a trap, longer")
        assert (await c.object_info("dots", "keep.txt"))["size"] == len(b"keep me")
        await c.remove("dots", "x/../keep.txt")
        with pytest.raises(KeyNotFound):
            await c.object_info("dots", "x/../keep.txt")
        assert (await c.object_info("dots", "keep.txt"))["size"] == len(b"keep me")


async def test_keys_holding_a_line_break_reach_their_routes(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """A key may hold a line break (S3's and the namespace's rules allow it): the object
    routes' path pattern must match it, or info, bytes, signed URLs and rm answer aiohttp's
    plain 404 for a key that lists."""
    (hana,) = await tokens(inproc.api.url, "hana")
    src = tmp_path / "f.txt"
    src.write_bytes(b"two lines")
    key = "line\nbreak/cr\r\nlf.txt"
    headers = {"Authorization": f"Bearer {hana}"}
    async with Client(inproc.api.url, token=hana) as c, aiohttp.ClientSession() as s:
        await c.make_bucket("breaks")
        await c.upload_to([src], "breaks", key)
        assert (await c.object_info("breaks", key))["size"] == len(b"two lines")
        url = f"{inproc.api.url}/objects/breaks/{quote(key, safe='/')}"
        async with s.get(url, headers=headers) as r:
            assert r.status == 200
            assert await r.read() == b"two lines"
        signed = await c.object_url("breaks", key)
        assert signed["key"] == key
        async with s.get(signed["download_url"]) as r:  # no token: the URL is the grant
            assert r.status == 200
            assert await r.read() == b"two lines"
        await c.remove("breaks", key)
        with pytest.raises(KeyNotFound):
            await c.object_info("breaks", key)


async def test_a_file_finalized_under_a_key_is_no_dedup_answer_before_its_link(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/finalize-upload`` with a key commits the file, then links it: a native ``POST
    /upload`` of the same bytes made between the two (the hook on ``Namespace.link`` opens
    that window every time) gets a file of its own (it got the object's file, 409, before),
    and the object's delete leaves that file whole."""
    (dana,) = await tokens(inproc.api.url, "dana")
    data = b"bytes finalized under a key"
    digest = hashlib.sha256(data).hexdigest()
    headers = {"Authorization": f"Bearer {dana}"}
    raw = {**headers, "Content-Type": "application/octet-stream"}
    native: list[tuple[int, dict[str, Any]]] = []
    real_link = Namespace.link

    async with Client(inproc.api.url, token=dana) as c, aiohttp.ClientSession() as s:

        async def link_after_a_native_upload(self: Namespace, *args: Any, **kw: Any) -> Any:
            q = {"filename": "mine.txt"}
            async with s.post(f"{inproc.api.url}/upload", params=q, data=data, headers=raw) as r:
                native.append((r.status, await r.json()))
            return await real_link(self, *args, **kw)

        monkeypatch.setattr(Namespace, "link", link_after_a_native_upload)
        await c.make_bucket("win")
        plan = await c.api.init_upload(
            name="n.txt",
            size=len(data),
            sha256=digest,
            chunker="fixed:65536",
            chunks=[{"sha256": digest, "size": len(data)}],
        )
        put = await c.api.proxy_put_chunk(digest, data, file_id=plan["file_id"])
        body = {"file_id": plan["file_id"], "receipts": {digest: put["receipt"]}}
        body.update(bucket="win", key="w/n.txt")
        async with s.post(f"{inproc.api.url}/finalize-upload", json=body, headers=headers) as r:
            assert r.status == 200
        ((status, got),) = native
        assert status == 201, got
        assert got["file_id"] != plan["file_id"]
        async with s.delete(f"{inproc.api.url}/objects/win/w/n.txt", headers=headers) as r:
            assert r.status == 200
        out = await c.api.download_plan(str(got["file_id"]))
        assert out["size"] == len(data)
        async with s.get(f"{inproc.api.url}/file/{plan['file_id']}", headers=headers) as r:
            assert r.status == 404  # the object's file went with its version
