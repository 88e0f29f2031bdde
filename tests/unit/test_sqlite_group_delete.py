"""The SQLite store's deletes in its group commit (``delete_object``, what a prune sends 16
at once): deletes issued together share a commit; each gets its own answer (an old version
removed, the current one removed and the one under it current again, a marker made, no
second marker with ``unless_deleted``, a version gone already answered None, a missing
bucket refused alone); a delete that fails after counting its usage is rolled back alone;
usage and chunk references come out exact."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dfs.errors import BucketNotFound, Conflict
from dfs.meta import open_metadata_store, sqlite_namespace_writes
from dfs.meta.namespace import VERSIONING_ENABLED, Usage
from tests.contract.test_namespace_store import (
    assert_refcounts_exact,
    bucket,
    cid,
    make_file,
    obj,
    refcounts,
)


async def test_deletes_in_a_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns: Any = await open_metadata_store(f"sqlite://{tmp_path / 'meta.db'}")
    try:
        await bucket(ns, "gd", versioning=VERSIONING_ENABLED)
        ids = [cid(("gd", i)) for i in range(6)]
        files = [await make_file(ns, "t1", [(ids[i], 10 + i)]) for i in range(6)]
        vers = []
        for i in range(6):  # two versions of each of k0, k1, k2
            vers.append((await ns.put_object(obj("gd", f"k{i % 3}", files[i]), 1.0 + i)).version)
        before = await ns.usage("t1", "gd")
        real = sqlite_namespace_writes.count_version

        def failing(files_: Any, tenant: str, b: str, key: str, **kw: Any) -> None:
            real(files_, tenant, b, key, **kw)
            if key == "k2" and kw["sign"] < 0:
                raise Conflict("injected")

        monkeypatch.setattr(sqlite_namespace_writes, "count_version", failing)
        commits = ns._group.commits
        got = await asyncio.gather(
            ns.delete_object("gd", "k0", vers[0].version_id, 9.0),  # an old version
            ns.delete_object("gd", "k1", vers[4].version_id, 9.0),  # the current one
            ns.delete_object("gd", "k2", vers[2].version_id, 9.0),  # fails, alone
            ns.delete_object("gd", "k0", None, 9.0),  # a marker
            ns.delete_object("gd", "k0", None, 9.0, unless_deleted=True),  # no second one
            ns.delete_object("nope", "k0", None, 9.0),  # refused alone
            ns.delete_object("gd", "k0", vers[0].version_id, 9.0),  # gone already
            return_exceptions=True,
        )
        assert 1 <= ns._group.commits - commits <= 2  # the first at once, the rest together
        assert got[0].version_id == vers[0].version_id
        assert got[1].version_id == vers[4].version_id
        assert got[1].is_latest
        assert (await ns.get_object("gd", "k1")).version_id == vers[1].version_id
        assert isinstance(got[2], Conflict)
        assert got[3].is_delete_marker
        assert got[4].is_delete_marker
        assert got[4].version_id == got[3].version_id
        assert isinstance(got[5], BucketNotFound)
        assert got[6] is None
        # k0: its first version gone and a marker on top (one object less); k1: its
        # current version gone; k2 as it was
        assert await ns.usage("t1", "gd") == Usage(
            before.objects - 1,
            before.versions - 2,
            1,
            before.logical_bytes - 10 - 14,
            before.stored_bytes - 10 - 14,
        )
        assert (await ns.get_object("gd", "k2", vers[2].version_id)).file_id == files[2].file_id
        assert await refcounts(ns, ids) == {ids[i]: (0 if i in (0, 4) else 1) for i in range(6)}
        await assert_refcounts_exact(ns, ["t1"], ids)
    finally:
        await ns.close()
