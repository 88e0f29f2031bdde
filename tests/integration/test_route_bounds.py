"""Bounds the API's native routes put on what a tenant's token may send: every value a route
stores or computes with is checked first (400), never left to overflow a store's integer,
crash a conversion (500) or grow a record without bound."""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from typing import Any

import pytest

from dfs import protocol
from dfs.api.body_slots import PER_TENANT
from dfs.api.context import BIG_BODIES
from dfs.api.namespace_bodies import MAX_GRANTS, NAMESPACE_BODY
from tests.integration.conftest import InProcessCluster
from tests.integration.test_security import raw, tenant_tokens

pytestmark = pytest.mark.integration

MIB = 1 << 20


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _object(url: str, token: str, bucket: str, key: str) -> None:
    st, body = await raw("POST", f"{url}{protocol.BUCKETS}", _auth(token), json={"name": bucket})
    assert st == 201, body
    up = f"{url}{protocol.UPLOAD_FILE}?filename=f&bucket={bucket}&key={key}"
    st, body = await raw("POST", up, _auth(token), data=b"some bytes")
    assert st == 201, body


async def test_shared_with_and_grants_name_tenants_and_are_bounded(
    inproc: InProcessCluster,
) -> None:
    """``shared_with`` took any list of any strings: 200,000 names, or one of a megabyte,
    stored on the version (and read by every listing of the bucket); grants took any name
    for a tenant, the empty one included."""
    url = inproc.api.url
    (alice,) = await tenant_tokens(url, "alice")
    await _object(url, alice, "box", "k")
    info = f"{url}/object-info/box/k"
    for shared in (
        [f"t{i}" for i in range(MAX_GRANTS + 1)],
        ["x" * 100_000],
        ["Not A Tenant"],
        ["bob\x00"],
        [""],
        [7],
    ):
        st, body = await raw("PATCH", info, _auth(alice), json={"shared_with": shared})
        assert st == 400, (shared[:2], st, body)
    st, body = await raw("GET", info, _auth(alice))
    assert (st, body["shared_with"], body["access"]) == (200, [], "private")  # unchanged
    at_bound = [f"t{i}" for i in range(MAX_GRANTS)]
    st, body = await raw("PATCH", info, _auth(alice), json={"shared_with": at_bound})
    assert (st, body["shared_with"]) == (200, sorted(at_bound)), body
    bucket = f"{url}{protocol.BUCKETS}/box"
    for grants in ({"": "read"}, {"Bob Smith": "read"}, {"x" * 1000: "read-write"}):
        st, body = await raw("PATCH", bucket, _auth(alice), json={"grants": grants})
        assert st == 400, (grants, st, body)
    st, body = await raw("PATCH", bucket, _auth(alice), json={"grants": {"bob": "read"}})
    assert (st, body["grants"]) == (200, {"bob": "read"}), body


def _padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON of ``size`` bytes (blanks before its closing brace)."""
    text = json.dumps(body)
    return (text[:-1] + " " * (size - len(text)) + "}").encode()


async def _post(url: str, token: str, method: str, data: bytes) -> tuple[int, Any]:
    headers = {**_auth(token), "Content-Type": "application/json"}
    return await raw(method, url, headers, data=data)


async def test_namespace_bodies_are_small_or_read_in_a_big_request_slot(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The namespace's JSON routes read bodies of up to 24 MiB with no big-request slot
    (four 12 MiB bodies of empty objects took ~1 GiB of the API's memory at once): a route
    writing one bucket or version now takes at most ``NAMESPACE_BODY`` (413 above), and
    the batch routes read a big body only in one of the tenant's slots (503 when it cannot
    get one), as /init-uploads does; /download-plans takes at most ``PLANS_BODY``."""
    url = inproc.api.url
    alice, bob = await tenant_tokens(url, "alice", "bob")
    await _object(url, alice, "box", "k")
    big = NAMESPACE_BODY + 1
    for method, path, body in (
        ("POST", protocol.BUCKETS, {"name": "other"}),
        ("PATCH", f"{protocol.BUCKETS}/box", {"access": "private"}),
        ("PUT", "/objects/box/k2", {}),
        ("PATCH", "/object-info/box/k", {"tags": {}}),
        ("POST", protocol.OBJECTS_RESTORE, {"bucket": "box", "key": "k", "version": "null"}),
        ("POST", protocol.DOWNLOAD_PLANS, {"file_ids": [str(uuid.uuid4())]}),
    ):
        st, answer = await _post(f"{url}{path}", alice, method, _padded(body, big))
        assert (st, answer["error"]["code"]) == (413, "payload_too_large"), (path, answer)
    slots = inproc.api.runner.app[BIG_BODIES]
    monkeypatch.setattr(slots, "_wait", 0.2)
    link = {"bucket": "box", "objects": [{"key": "k3"}]}
    remove = {"bucket": "box", "versions": [{"key": "k3", "version": "null"}]}
    async with contextlib.AsyncExitStack() as held:
        for _ in range(PER_TENANT):  # alice's big requests all in flight
            await held.enter_async_context(slots.slot("alice"))
        for path, body in ((protocol.OBJECTS_LINK, link), (protocol.OBJECTS_REMOVE, remove)):
            st, answer = await _post(f"{url}{path}", alice, "POST", _padded(body, 2 * MIB))
            assert (st, answer["error"]["code"]) == (503, "busy"), (path, answer)
            st, answer = await _post(f"{url}{path}", bob, "POST", _padded(body, 2 * MIB))
            assert st == 404, answer  # bob's own slot: read and answered (not his bucket)
    st, answer = await _post(f"{url}{protocol.OBJECTS_LINK}", alice, "POST", _padded(link, 2 * MIB))
    assert st == 200, answer
    assert answer["objects"][0]["object"]["key"] == "k3", answer


async def test_search_filters_are_numbers_the_spec_allows(inproc: InProcessCluster) -> None:
    """``min_size=1e400`` and ``min_size=nan`` answered 500 (``int()`` of a float it cannot
    convert); ``after=nan`` silently matched nothing. The spec says integers of at least 0
    for sizes and numbers for times: anything else is 400."""
    url = inproc.api.url
    (alice,) = await tenant_tokens(url, "alice")
    await _object(url, alice, "box", "k")
    search = f"{url}{protocol.BUCKETS}/box/search?"
    for query in (
        "min_size=1e400",
        "min_size=nan",
        "max_size=-1",
        "max_size=1.5",
        "min_size=9223372036854775808",
        "after=nan",
        "before=inf",
        "after=-infinity",
    ):
        st, body = await raw("GET", search + query, _auth(alice))
        assert (st, body["error"]["code"]) == (400, "invalid_request"), (query, body)
    for query, keys in (
        ("min_size=10&max_size=10", ["k"]),
        ("min_size=11", []),
        ("after=0", ["k"]),
    ):
        st, body = await raw("GET", search + query, _auth(alice))
        assert (st, [o["key"] for o in body["objects"]]) == (200, keys), (query, body)


async def test_paged_upload_numbers_fit_the_stores_integers(inproc: InProcessCluster) -> None:
    """A page number or offset of 2**63 or more (JSON carries up to 2**64 - 1) reached
    SQLite, which refused it with an OverflowError: 500. Now 400, and nothing written."""
    url = inproc.api.url
    (alice,) = await tenant_tokens(url, "alice")
    start = {"name": "big", "chunker": "fixed:1048576"}
    st, body = await raw("POST", f"{url}{protocol.PAGED_UPLOAD}", _auth(alice), json=start)
    assert st == 201, body
    file_id = body["file_id"]
    chunk = {"sha256": hashlib.sha256(b"x").hexdigest(), "size": 1}
    page_url, prove_url = (
        f"{url}{protocol.PAGED_UPLOAD_PAGE}",
        f"{url}{protocol.PAGED_UPLOAD_PROVE}",
    )
    for page, offset, chunks in (
        (2**63, 0, [chunk]),
        (0, 2**64 - 1, [chunk]),
        (0, 2**63 - 1, [chunk]),  # its chunk ends past what a store holds
    ):
        req = {"file_id": file_id, "page": page, "offset": offset, "chunks": chunks}
        st, body = await raw("POST", page_url, _auth(alice), json=req)
        assert (st, body["error"]["code"]) == (400, "invalid_request"), (page, offset, body)
    st, body = await raw("POST", prove_url, _auth(alice), json={"file_id": file_id, "page": 2**63})
    assert (st, body["error"]["code"]) == (400, "invalid_request"), body
    req = {"file_id": file_id, "page": 0, "offset": 0, "chunks": [chunk]}
    st, body = await raw("POST", page_url, _auth(alice), json=req)
    assert (st, body["page"]) == (201, 0), body  # page 0 was never written by the above


async def test_query_integers_of_thousands_of_digits_answer_400(
    inproc: InProcessCluster,
) -> None:
    """``int()`` refuses a string of over 4300 digits (ValueError): a listing's ``limit``
    (of a public bucket: no token needed) and a signed URL's ``ttl`` answered 500."""
    url = inproc.api.url
    (alice,) = await tenant_tokens(url, "alice")
    await _object(url, alice, "box", "k")
    st, body = await raw(
        "PATCH", f"{url}{protocol.BUCKETS}/box", _auth(alice), json={"access": "public-read"}
    )
    assert st == 200, body
    n = "1" * 5000
    for path, headers in (
        (f"{protocol.BUCKETS}/box/objects?limit={n}", {}),
        (f"{protocol.BUCKETS}/box/search?limit={n}", {}),
        (f"{protocol.BUCKETS}/box/search?min_size={n}", _auth(alice)),
        (f"/object-url/box/k?ttl={n}", _auth(alice)),
    ):
        st, body = await raw("GET", f"{url}{path}", headers)
        assert (st, body["error"]["code"]) == (400, "invalid_request"), (path[:40], body)
    st, body = await raw("GET", f"{url}/object-url/box/k?ttl=60", _auth(alice))
    assert st == 200, body


async def test_a_chunker_of_thousands_of_digits_answers_a_short_400(
    inproc: InProcessCluster,
) -> None:
    """``chunker: "fixed:999..."`` of 5000 digits made ``int()`` raise ValueError: 500 on
    /init-upload and /paged-upload; and every refusal quoted the whole text back (a list
    of 50 KB as ``chunker`` answered 50 KB)."""
    url = inproc.api.url
    (alice,) = await tenant_tokens(url, "alice")
    empty = {"name": "e", "size": 0, "sha256": hashlib.sha256(b"").hexdigest(), "chunks": []}
    for chunker in ("fixed:" + "9" * 5000, ["x" * 1000] * 50):
        for path, body in ((protocol.INIT_UPLOAD, empty), (protocol.PAGED_UPLOAD, {"name": "p"})):
            req = {**body, "chunker": chunker}
            st, answer = await raw("POST", f"{url}{path}", _auth(alice), json=req)
            assert (st, answer["error"]["code"]) == (400, "invalid_request"), (path, answer)
            assert len(answer["error"]["message"]) < 200
