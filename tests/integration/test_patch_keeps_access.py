"""PATCH /object-info with a new content type or metadata copies the version over itself;
the copy keeps the access and sharing the request does not change: a public or shared
object stayed readable by others only until its content type was fixed (the copy was made
private, its ``shared_with`` dropped). A read-write grantee may not make that copy of an
object that is not private (as it may not write one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfs.client import Client
from dfs.errors import Forbidden, KeyNotFound
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("versioning", ["", "enabled"])
async def test_a_new_content_type_keeps_public_and_shared_objects_so(
    inproc: InProcessCluster, tmp_path: Path, versioning: str
) -> None:
    alice, bob = await tokens(inproc.api.url, "alice", "bob")
    f = tmp_path / "p.html"
    f.write_bytes(b"<p>hi</p>")
    async with Client(inproc.api.url, token=alice) as a, Client(inproc.api.url, token=bob) as b:
        await a.make_bucket("site", versioning=versioning or None)
        await a.upload_to([f], "site", "pub.html")
        await a.upload_to([f], "site", "sh.html")
        await a.update_object("site", "pub.html", access="public-read")
        await a.update_object("site", "sh.html", shared_with=["bob"])
        pub = await a.update_object("site", "pub.html", content_type="text/html")
        sh = await a.update_object("site", "sh.html", metadata={"lang": "en"})
        assert (pub["content_type"], pub["access"]) == ("text/html", "public-read")
        assert (sh["metadata"], sh["access"], sh["shared_with"]) == (
            {"lang": "en"},
            "shared",
            ["bob"],
        )
        for key in ("pub.html", "sh.html"):  # bob still reads both, as before the change
            out = tmp_path / "got"
            await b.download_from("site", key, out)
            assert out.read_bytes() == b"<p>hi</p>"
        # an access given with the change is the one the copy gets
        made = await a.update_object("site", "pub.html", content_type="text/x", access="private")
        assert made["access"] == "private"
        with pytest.raises(KeyNotFound):  # bob no longer reads it: as missing
            await b.object_info("site", "pub.html")


async def test_a_grantee_may_not_copy_an_object_that_is_not_private(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    alice, bob = await tokens(inproc.api.url, "alice", "bob")
    f = tmp_path / "p.html"
    f.write_bytes(b"<p>hi</p>")
    async with Client(inproc.api.url, token=alice) as a, Client(inproc.api.url, token=bob) as b:
        await a.make_bucket("team")
        await a.set_bucket("team", grants={"bob": "read-write"})
        await a.upload_to([f], "team", "pub.html")
        await a.upload_to([f], "team", "own.html")
        await a.update_object("team", "pub.html", access="public-read")
        with pytest.raises(Forbidden):
            await b.update_object("team", "pub.html", content_type="text/plain")
        kept = await a.object_info("team", "pub.html")
        assert (kept["access"], kept["content_type"]) == ("public-read", "text/html")
        # a private one the grantee changes as it may write it
        own = await b.update_object("team", "own.html", content_type="text/plain")
        assert (own["access"], own["content_type"]) == ("private", "text/plain")
