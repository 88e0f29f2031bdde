"""Bounds the API's native routes put on what a tenant's token may send: every value a route
stores or computes with is checked first (400), never left to overflow a store's integer,
crash a conversion (500) or grow a record without bound."""

from __future__ import annotations

import pytest

from dfs import protocol
from dfs.api.namespace_bodies import MAX_GRANTS
from tests.integration.conftest import InProcessCluster
from tests.integration.test_security import raw, tenant_tokens

pytestmark = pytest.mark.integration


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
