"""The SQLite store's group commit sums the usage of its writes and writes each counter row
once before its COMMIT (``dfs.meta.sqlite_usage_deltas``): a write that fails after adding
to the sums is rolled back to its savepoint, and its additions leave the sums with it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dfs.errors import Conflict
from dfs.meta import open_metadata_store, sqlite_namespace_writes
from dfs.meta.namespace import Usage
from tests.contract.test_namespace_store import Store, bucket, cid, make_file, obj


async def test_a_write_failing_after_its_usage_was_summed_takes_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns: Store = await open_metadata_store(f"sqlite://{tmp_path / 'meta.db'}")  # type: ignore[assignment]
    try:
        await bucket(ns, "gu")
        old = await make_file(ns, "t1", [(cid("gu-old"), 5)])
        await ns.put_object(obj("gu", "doomed", old), 1.0)  # replaced below: counted out
        files = [await make_file(ns, "t1", [(cid(("gu", i)), 10 + i)]) for i in range(8)]
        real = sqlite_namespace_writes.count_version

        def failing_after(files_: Any, tenant: str, bucket_: str, key: str, **kw: Any) -> None:
            real(files_, tenant, bucket_, key, **kw)  # summed...
            if key == "doomed" and kw["sign"] > 0:
                raise Conflict("injected after the usage was summed")  # ...then the write fails

        monkeypatch.setattr(sqlite_namespace_writes, "count_version", failing_after)

        async def put(i: int) -> bool:
            key = "doomed" if i == 3 else f"k{i}"
            try:
                await ns.put_object(obj("gu", key, files[i]), 2.0)
            except Conflict:
                return False
            return True

        got = await asyncio.gather(*(put(i) for i in range(8)))
        assert got == [i != 3 for i in range(8)]
        sizes = [10 + i for i in range(8) if i != 3]
        # seven new keys and the old "doomed" one, untouched by the write that failed
        want = Usage(8, 8, 0, sum(sizes) + 5, sum(sizes) + 5)
        assert await ns.usage("t1", "gu") == want
        assert (await ns.get_object("gu", "doomed")).file_id == old.file_id
    finally:
        await ns.close()
