"""``dfs.api.object_files.link_made``: the release of a file made for an object never
changes the request's answer. A version already written stays the answer when the delete
of the grantee's file fails, and a refused link's error stays the error (with the release
still tried); an unreachable store is logged, not raised."""

from __future__ import annotations

from typing import Any, cast

import pytest

from dfs.api.bodies import Principal
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_service import Namespace
from dfs.api.object_files import link_made
from dfs.errors import KeyExists, Unavailable
from dfs.meta.namespace import ObjectVersion, PutResult

GRANTEE = Principal("grantee", "user")


class _Coord:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.deleted: list[tuple[str, str]] = []

    async def delete_file(self, file_id: str, tenant: str) -> Any:
        self.deleted.append((file_id, tenant))
        if self.error is not None:
            raise self.error


class _Namespace:
    """The two calls ``link_made`` makes: ``link`` and ``coord.delete_file``."""

    def __init__(self, linked_file: str | Exception, delete_error: Exception | None) -> None:
        self.linked_file = linked_file
        self.coord = _Coord(delete_error)

    async def link(self, who: Principal, bucket: str, key: str, *rest: Any, **kw: Any) -> PutResult:
        if isinstance(self.linked_file, Exception):
            raise self.linked_file
        return PutResult(ObjectVersion(bucket, key, "null", self.linked_file, 3, 1.0))


async def test_a_written_version_survives_a_failed_release() -> None:
    ns = _Namespace("owners-clone", Unavailable("metadata store down"))
    made = await link_made(
        cast(Namespace, ns), GRANTEE, ("b", "k"), "grantees", ObjectFields(), made=True
    )
    assert made.version.file_id == "owners-clone"
    assert ns.coord.deleted == [("grantees", "grantee")]


async def test_a_refused_link_keeps_its_error_when_the_release_fails() -> None:
    ns = _Namespace(KeyExists("k exists"), Unavailable("metadata store down"))
    with pytest.raises(KeyExists):
        await link_made(
            cast(Namespace, ns), GRANTEE, ("b", "k"), "grantees", ObjectFields(), made=True
        )
    assert ns.coord.deleted == [("grantees", "grantee")]


async def test_a_file_not_made_here_is_never_released() -> None:
    ns = _Namespace(KeyExists("k exists"), None)
    with pytest.raises(KeyExists):
        await link_made(
            cast(Namespace, ns), GRANTEE, ("b", "k"), "earlier", ObjectFields(), made=False
        )
    assert ns.coord.deleted == []
