"""What a read-write grantee of a bucket may not do or learn through the native API, and
what a tenant an object is shared with may do (a review's findings): a grantee never makes
an object public (``POST /objects-link``, ``POST /objects-restore``), never learns whom the
owner shared an object with from the answers of its own writes, and a tenant an object is
shared with copies it as it reads it. In process: the API, its nodes, raw HTTP.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


async def call(
    s: aiohttp.ClientSession, method: str, url: str, token: str | None, **kw: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with s.request(method, url, headers=headers, **kw) as r:
        return r.status, await r.json() if r.content_type == "application/json" else None


async def anonymous_status(s: aiohttp.ClientSession, url: str) -> int:
    async with s.get(url) as r:
        return r.status


async def _inbox(s: aiohttp.ClientSession, url: str, alice: str, versioning: str) -> None:
    """Alice's bucket ``inbox`` (``versioning``), granted read-write to bob."""
    st, _ = await call(
        s, "POST", f"{url}/buckets", alice, json={"name": "inbox", "versioning": versioning}
    )
    assert st == 201
    grants = {"grants": {"bob": "read-write"}}
    st, _ = await call(s, "PATCH", f"{url}/buckets/inbox", alice, json=grants)
    assert st == 200


async def test_a_grantees_batch_link_cannot_make_an_object_public(
    inproc: InProcessCluster,
) -> None:
    url = inproc.api.url
    alice, bob = await tokens(url, "alice", "bob")
    async with aiohttp.ClientSession() as s:
        await _inbox(s, url, alice, "unversioned")
        body = {
            "bucket": "inbox",
            "objects": [
                {"key": "public.txt", "access": "public-read"},
                {"key": "shared.txt", "access": "shared"},
                {"key": "plain.txt"},
            ],
        }
        st, got = await call(s, "POST", f"{url}/objects-link", bob, json=body)
        assert st == 200
        public, shared, plain = got["objects"]
        # refused as PUT /objects refuses it: that entry only
        assert (public["key"], public["error"]["code"]) == ("public.txt", "forbidden")
        assert (shared["key"], shared["error"]["code"]) == ("shared.txt", "forbidden")
        assert plain["object"]["access"] == "private"
        assert await anonymous_status(s, f"{url}/objects/inbox/public.txt") == 404
        st, _ = await call(s, "GET", f"{url}/object-info/inbox/public.txt", alice)
        assert st == 404  # nothing was linked for the refused entry
        # the owner's batch still publishes
        body["objects"] = [{"key": "public.txt", "access": "public-read"}]
        st, got = await call(s, "POST", f"{url}/objects-link", alice, json=body)
        assert got["objects"][0]["object"]["access"] == "public-read"
        assert await anonymous_status(s, f"{url}/objects/inbox/public.txt") == 200


async def test_a_grantee_cannot_restore_a_public_version_over_a_private_one(
    inproc: InProcessCluster,
) -> None:
    url = inproc.api.url
    alice, bob = await tokens(url, "alice", "bob")
    async with aiohttp.ClientSession() as s:
        await _inbox(s, url, alice, "enabled")
        key_url = f"{url}/objects/inbox/page.html"
        st, v1 = await call(s, "PUT", key_url, alice, json={"access": "public-read"})
        assert st == 201
        # the owner makes the key private by writing a private version over it
        st, v2 = await call(s, "PUT", key_url, alice, json={"access": "private"})
        assert st == 201
        assert await anonymous_status(s, key_url) == 404
        restore = {"bucket": "inbox", "key": "page.html"}
        old = {**restore, "version": v1["object"]["version_id"]}
        st, refused = await call(s, "POST", f"{url}/objects-restore", bob, json=old)
        assert (st, refused["error"]["code"]) == (403, "forbidden")
        assert await anonymous_status(s, key_url) == 404
        # a private version the grantee may restore; the owner any
        mine = {**restore, "version": v2["object"]["version_id"]}
        st, done = await call(s, "POST", f"{url}/objects-restore", bob, json=mine)
        assert (st, done["object"]["access"]) == (200, "private")
        st, done = await call(s, "POST", f"{url}/objects-restore", alice, json=old)
        assert (st, done["object"]["access"]) == (200, "public-read")
        assert await anonymous_status(s, key_url) == 200


async def test_a_grantees_writes_do_not_answer_whom_the_owner_shared_with(
    inproc: InProcessCluster,
) -> None:
    url = inproc.api.url
    alice, bob, _carol = await tokens(url, "alice", "bob", "carol")
    async with aiohttp.ClientSession() as s:
        await _inbox(s, url, alice, "enabled")
        info = f"{url}/object-info/inbox/secret.txt"
        st, _ = await call(s, "PUT", f"{url}/objects/inbox/secret.txt", alice, json={})
        assert st == 201
        st, own = await call(s, "PATCH", info, alice, json={"shared_with": ["carol"]})
        assert (st, own["shared_with"]) == (200, ["carol"])  # the owner sees it
        # private again, still naming carol: a version a grantee may restore
        st, own = await call(s, "PATCH", info, alice, json={"access": "private"})
        assert (st, own["shared_with"]) == (200, ["carol"])
        vid = own["version_id"]

        st, tagged = await call(s, "PATCH", info, bob, json={"tags": {"x": "y"}})
        assert (st, tagged["shared_with"]) == (200, [])
        st, again = await call(
            s,
            "PUT",
            f"{url}/objects/inbox/secret.txt",
            bob,
            json={"tags": {"x": "y"}, "unless_current": True},
        )
        assert (st, again["object"]["version_id"], again["object"]["shared_with"]) == (
            200,
            vid,
            [],
        )
        restore = {"bucket": "inbox", "key": "secret.txt", "version": vid}
        st, restored = await call(s, "POST", f"{url}/objects-restore", bob, json=restore)
        assert st == 200
        assert restored["object"]["shared_with"] == []
        new_vid = restored["object"]["version_id"]
        st, gone = await call(s, "DELETE", f"{url}/objects/inbox/secret.txt?version={vid}", bob)
        assert (st, gone["version"]["shared_with"]) == (200, [])
        remove = {"bucket": "inbox", "versions": [{"key": "secret.txt", "version": new_vid}]}
        st, removed = await call(s, "POST", f"{url}/objects-remove", bob, json=remove)
        assert (st, removed["versions"][0]["version"]["shared_with"]) == (200, [])


async def test_a_tenant_an_object_is_shared_with_copies_it(inproc: InProcessCluster) -> None:
    url = inproc.api.url
    alice, bob = await tokens(url, "alice", "bob")
    async with aiohttp.ClientSession() as s:
        for who, name in ((alice, "site"), (bob, "bobs")):
            st, _ = await call(s, "POST", f"{url}/buckets", who, json={"name": name})
            assert st == 201
        upload = f"{url}/upload?filename=doc.txt&bucket=site&key=docs/doc.txt"
        st, _ = await call(s, "POST", upload, alice, data=b"shared doc")
        assert st == 201
        info = f"{url}/object-info/site/docs/doc.txt"
        st, _ = await call(s, "PATCH", info, alice, json={"shared_with": ["bob"]})
        assert st == 200
        one = {"src_bucket": "site", "src_key": "docs/doc.txt", "dst_bucket": "bobs"}
        st, made = await call(s, "POST", f"{url}/objects-copy", bob, json={**one, "dst_key": "c"})
        assert st == 200, made
        async with s.get(f"{url}/objects/bobs/c", headers={"Authorization": f"Bearer {bob}"}) as r:
            assert (r.status, await r.read()) == (200, b"shared doc")
        # a whole prefix is a listing of alice's bucket, which bob may not list
        prefix = {"src_bucket": "site", "src_key": "docs/", "dst_bucket": "bobs"}
        st, refused = await call(
            s, "POST", f"{url}/objects-copy", bob, json={**prefix, "recursive": True}
        )
        assert (st, refused["error"]["code"]) == (404, "no_such_bucket")
