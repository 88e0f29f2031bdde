"""A forged continuation token is refused (InvalidRequest, a 400) by every listing of both
backends, never met as a wrong type, an overflow or a key condition DynamoDB rejects (a
500): the tokens are opaque to callers, but they come back from them."""

from __future__ import annotations

import base64
import json

import pytest

from dfs.errors import InvalidRequest
from dfs.meta.namespace import SearchQuery
from tests.contract.test_namespace_store import Store, bucket, obj

FORGED = [
    {"k": "a", "r": "x"},
    {"k": "a", "r": 10**30},  # SQLite: OverflowError binding it
    {"k": "a", "r": True},
    {"k": ["a"]},
    {"p": 1},
    {"k": "a", "p": "b/"},
    {"r": 3},
    {"k": "\ud800"},  # a lone surrogate: no text either store can bind
    {"s": "in", "k": "a"},  # DynamoDB: no version sort key
    {"s": "gt"},
    {"s": "gt", "k": ""},  # DynamoDB: an empty key in a key condition
    {"s": "up", "k": "a"},
    [1],
]


def token(state: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


@pytest.mark.parametrize("state", FORGED, ids=lambda s: json.dumps(s))
async def test_a_forged_token_is_an_invalid_request(ns: Store, state: object) -> None:
    await bucket(ns, "tok")
    await ns.put_object(obj("tok", "a", None), 1.0)
    forged = token(state)
    with pytest.raises(InvalidRequest, match="continuation token"):
        await ns.list_objects("tok", token=forged)
    with pytest.raises(InvalidRequest, match="continuation token"):
        await ns.list_versions("tok", token=forged)
    with pytest.raises(InvalidRequest, match="continuation token"):
        await ns.search_objects("tok", SearchQuery(), token=forged)


async def test_the_tokens_a_listing_hands_out_are_taken(ns: Store) -> None:
    await bucket(ns, "tk2")
    for key in ("a", "b/1", "b/2", "c"):
        await ns.put_object(obj("tk2", key, None), 1.0)
    seen, tok = [], None
    while True:
        page = await ns.list_versions("tk2", delimiter="/", token=tok, limit=1)
        seen += [o.key for o in page.objects] + page.common_prefixes
        tok = page.next_token
        if tok is None:
            break
    assert seen == ["a", "b/", "c"]


async def test_a_token_never_lists_keys_outside_the_prefix(ns: Store) -> None:
    """A token (opaque, but it comes back from callers) sent with another prefix than its
    listing's lists keys under that prefix only: one that resumes after a common prefix
    before the prefix listed every key between the two on SQLite."""
    await bucket(ns, "tk3")
    for key in ("a/1", "b", "c/1", "m", "t/1", "t/2", "z"):
        await ns.put_object(obj("tk3", key, None), 1.0)
    page = await ns.list_objects("tk3", delimiter="/", limit=1)
    assert page.common_prefixes == ["a/"]
    for lister in (ns.list_objects, ns.list_versions):
        for delimiter in ("", "/"):
            got = await lister("tk3", prefix="t/", delimiter=delimiter, token=page.next_token)
            keys = [o.key for o in got.objects] + got.common_prefixes
            assert all(k.startswith("t/") for k in keys), (lister, delimiter, keys)
