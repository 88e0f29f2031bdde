"""Usage counters never drift: a random sequence of version changes on both backends (puts,
batches, deletes with and without a version id, restores, copies within and across tenants,
versioning switched on and suspended), and after each step every counter equals a recount
from the versions listed and the manifests of the files they link.
"""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict

import pytest

from dfs.errors import FileNotFound, KeyNotFound
from dfs.meta.base import FileRecord
from dfs.meta.namespace import (
    VERSIONING_ENABLED,
    VERSIONING_SUSPENDED,
    NewObject,
    ObjectVersion,
    Usage,
)
from dfs.meta.sqlite import SqliteMetadataStore
from dfs.namespace_rules import extension, top_prefix
from tests.contract.conftest import Store
from tests.contract.test_namespace_store import bucket, cid, make_file, nonzero

BUCKETS = {"ur-a": "ur-t1", "ur-b": "ur-t1", "ur-c": "ur-t2"}
KEYS = ["k.txt", "d/k.bin", "d/e/x.TXT", "z"]
STEPS = 60


async def _versions(ns: Store, b: str) -> list[ObjectVersion]:
    return (await ns.list_versions(b, limit=1000)).objects


def _usage(counts: list[int], stored: int) -> Usage:
    objects, versions, markers, logical = counts
    return Usage(objects, versions, markers, logical, stored)


async def _recount(
    ns: Store, tenant: str, buckets: list[str]
) -> tuple[Usage, dict[str, Usage], dict[str, dict[str, Usage]], dict[str, dict[str, Usage]]]:
    """The tenant's usage, each bucket's, and each bucket's by prefix and by type, from
    the versions alone."""
    chunk_size: dict[str, int] = {}
    tenant_chunks: set[str] = set()
    per_bucket: dict[str, Usage] = {}
    prefixes: dict[str, dict[str, Usage]] = {}
    types: dict[str, dict[str, Usage]] = {}
    total = [0, 0, 0, 0]
    for b in buckets:
        sums = [0, 0, 0, 0]
        chunks: set[str] = set()
        groups: dict[str, dict[str, list[int]]] = {
            "prefix": defaultdict(lambda: [0, 0, 0, 0]),
            "type": defaultdict(lambda: [0, 0, 0, 0]),
        }
        for v in await _versions(ns, b):
            row = (
                int(v.is_latest and not v.is_delete_marker),
                int(not v.is_delete_marker),
                int(v.is_delete_marker),
                v.size,
            )
            for target in (
                sums,
                total,
                groups["prefix"][top_prefix(v.key)],
                groups["type"][extension(v.key)],
            ):
                for i, n in enumerate(row):
                    target[i] += n
            if v.file_id:
                for e in await ns.get_manifest(v.file_id):
                    chunk_size[e.chunk_id] = e.size
                    chunks.add(e.chunk_id)
        tenant_chunks |= chunks
        per_bucket[b] = _usage(sums, sum(chunk_size[c] for c in chunks))
        prefixes[b] = nonzero({k: _usage(s, 0) for k, s in groups["prefix"].items()})
        types[b] = nonzero({k: _usage(s, 0) for k, s in groups["type"].items()})
    tenant_usage = _usage(total, sum(chunk_size[c] for c in tenant_chunks))
    return tenant_usage, per_bucket, prefixes, types


async def _check(ns: Store, step: str) -> None:
    for tenant in sorted(set(BUCKETS.values())):
        mine = [b for b, t in BUCKETS.items() if t == tenant]
        want_tenant, want_buckets, want_prefixes, want_types = await _recount(ns, tenant, mine)
        assert await ns.usage(tenant) == want_tenant, step
        for b in mine:
            assert await ns.usage(tenant, b) == want_buckets[b], step
            assert nonzero(await ns.usage_by_prefix(tenant, b)) == want_prefixes[b], step
            assert nonzero(await ns.usage_by_type(tenant, b)) == want_types[b], step


async def _step(ns: Store, rnd: random.Random, files: dict[str, list[FileRecord]], t: float) -> str:
    b = rnd.choice(list(BUCKETS))
    tenant = BUCKETS[b]
    key = rnd.choice(KEYS)
    op = rnd.choice(["put", "put", "batch", "delete", "delete-version", "restore", "copy", "ver"])
    f = rnd.choice(files[tenant])
    if op == "put":
        with contextlib.suppress(FileNotFound):  # its file was released since
            await ns.put_object(NewObject(b, key, f.file_id, f.size), t)
    elif op == "batch":
        g = rnd.choice(files[tenant])
        new = await make_file(ns, tenant, [(cid(("ur-new", t)), 7), (cid("ur-c0"), 11)])
        objs = [
            NewObject(b, key, f.file_id, f.size),
            NewObject(b, rnd.choice(KEYS), g.file_id, g.size),
            NewObject(b, rnd.choice(KEYS), new.file_id, new.size),
            NewObject(b, rnd.choice(KEYS), "", 0),
        ]
        await ns.put_objects(objs, t)
    elif op in ("delete-version", "restore"):
        versions = [v for v in await _versions(ns, b) if v.key == key]
        if not versions:
            return f"{op} {b}/{key}: none"
        v = rnd.choice(versions)
        if op == "restore":
            with contextlib.suppress(KeyNotFound):  # a delete marker
                await ns.restore_version(b, key, v.version_id, t)
        else:
            await ns.delete_object(b, key, v.version_id, t)
        return f"{op} {b}/{key}@{v.version_id}"
    elif op == "delete":
        await ns.delete_object(b, key, None, t)
    elif op == "copy":
        dst = rnd.choice(list(BUCKETS))
        with contextlib.suppress(KeyNotFound):  # no current object
            await ns.copy_object(b, key, None, NewObject(dst, rnd.choice(KEYS), "", 0), t)
        return f"copy {b}/{key} -> {dst}"
    else:
        state = rnd.choice([VERSIONING_ENABLED, VERSIONING_SUSPENDED])
        await ns.update_bucket(b, tenant, versioning=state)
        return f"versioning {b} {state}"
    return f"{op} {b}/{key}"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [1, 2])
async def test_random_changes_keep_usage_equal_to_a_recount(ns: Store, seed: int) -> None:
    rnd = random.Random(seed)
    for b, tenant in BUCKETS.items():
        await bucket(ns, b, tenant)
    files: dict[str, list[FileRecord]] = {}
    for tenant in sorted(set(BUCKETS.values())):
        files[tenant] = [
            await make_file(ns, tenant, [(cid(("ur", i)), 10 + i), (cid(f"ur-c{i % 2}"), 11)])
            for i in range(4)
        ]
    done: list[str] = []
    # a wrong delta stays in the counters, so a recount every few steps still finds it: on
    # DynamoDB (moto) each recount costs ~0.2 s, and the suite's time is CI's budget
    every = 1 if isinstance(ns, SqliteMetadataStore) else 4
    for i in range(STEPS):
        done.append(await _step(ns, rnd, files, 2.0 + i))
        if i % every == every - 1 or i == STEPS - 1:
            await _check(ns, " / ".join(done))
