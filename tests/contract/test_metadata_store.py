"""One contract suite for every MetadataStore implementation (see dfs/meta/base.py).

Backends are parametrized in ``conftest.py`` as the ``meta`` fixture.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
import uuid

import pytest

from dfs.errors import Conflict, FileNotFound
from dfs.meta.base import (
    FILE_COMPLETE,
    FILE_PENDING,
    HIDDEN_NAME_PREFIX,
    FileRecord,
    Location,
    ManifestEntry,
    MetadataStore,
    NodeRecord,
    TokenRecord,
)
from dfs.meta.sqlite import SqliteMetadataStore


def cid(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def new_file(
    name: str = "f",
    chunks: list[tuple[str, int]] | None = None,
    tenant: str = "t1",
    verified: bool = True,
):
    chunks = chunks if chunks is not None else [(cid(1), 10), (cid(2), 20)]
    manifest, off = [], 0
    for chunk_id, size in chunks:
        manifest.append(ManifestEntry(off, size, chunk_id))
        off += size
    rec = FileRecord(
        file_id=str(uuid.uuid4()),
        name=name,
        size=off,
        sha256=cid(name),
        chunker="fixed:4096",
        tenant=tenant,
        created_at=1.0,
        chunk_count=len(manifest),
        sha256_verified=verified,
    )
    return rec, manifest


async def test_live_nodes_filter_on_expiry(meta: MetadataStore) -> None:
    await meta.upsert_node(NodeRecord("n1", "127.0.0.1", 1, expires_at=100.0))
    await meta.upsert_node(NodeRecord("n2", "127.0.0.1", 2, expires_at=200.0))
    live = await meta.list_live_nodes(150.0)
    assert [n.node_id for n in live] == ["n2"]
    assert {n.node_id for n in await meta.list_nodes()} == {"n1", "n2"}
    # a heartbeat replaces the entry
    await meta.upsert_node(NodeRecord("n1", "127.0.0.1", 1, used_bytes=7, expires_at=300.0))
    live = await meta.list_live_nodes(150.0)
    assert [(n.node_id, n.used_bytes) for n in live] == [("n1", 7), ("n2", 0)]
    await meta.remove_node("n1")
    await meta.remove_node("unknown")
    assert [n.node_id for n in await meta.list_live_nodes(0.0)] == ["n2"]


async def test_create_get_manifest(meta: MetadataStore) -> None:
    rec, manifest = new_file()
    await meta.create_file(rec, manifest)
    got = await meta.get_file(rec.file_id)
    assert got.state == FILE_PENDING
    assert (got.name, got.size, got.sha256, got.chunk_count) == ("f", 30, rec.sha256, 2)
    assert await meta.get_manifest(rec.file_id) == manifest
    with pytest.raises(Conflict):
        await meta.create_file(rec, manifest)
    with pytest.raises(FileNotFound):
        await meta.get_file(str(uuid.uuid4()))
    with pytest.raises(FileNotFound):
        await meta.get_file(rec.file_id, tenant="other")
    with pytest.raises(FileNotFound):
        await meta.get_manifest(str(uuid.uuid4()))


async def test_get_files_and_manifests_of_many_files_at_once(meta: MetadataStore) -> None:
    a, ma = new_file("a", [(cid(1), 10), (cid(2), 20)])
    b, mb = new_file("b", [(cid(3), 5)], tenant="other")
    await meta.create_file(a, ma)
    await meta.create_file(b, mb)
    unknown = str(uuid.uuid4())
    got = await meta.get_files([b.file_id, unknown, a.file_id])
    assert list(got) == [b.file_id, a.file_id]
    assert got[a.file_id] == await meta.get_file(a.file_id)
    assert got[b.file_id] == await meta.get_file(b.file_id)
    # ids get_file refuses (unknown, another tenant's) are left out
    assert list(await meta.get_files([a.file_id, b.file_id, unknown], a.tenant)) == [a.file_id]
    assert await meta.get_files([]) == {}
    manifests = await meta.get_manifests([b.file_id, a.file_id])
    assert manifests == {b.file_id: mb, a.file_id: ma}
    with pytest.raises(FileNotFound):
        await meta.get_manifests([a.file_id, unknown])


async def test_commit_counts_and_is_idempotent(meta: MetadataStore) -> None:
    a, ma = new_file("a", [(cid(1), 10), (cid(2), 20), (cid(1), 10)])
    b, mb = new_file("b", [(cid(2), 20), (cid(3), 5)])
    await meta.create_file(a, ma)
    await meta.create_file(b, mb)
    assert (await meta.commit_file(a.file_id, 5.0)).state == FILE_COMPLETE
    assert (await meta.commit_file(a.file_id, 6.0)).state == FILE_COMPLETE  # no double count
    await meta.commit_file(b.file_id, 7.0)
    stats = await meta.get_stats()
    assert stats.total_files == 2
    assert stats.logical_bytes == 40 + 25
    assert stats.stored_bytes == 10 + 20 + 5
    assert stats.unique_chunks == 3
    assert stats.duplicates_avoided == 2  # cid(1) again inside a, cid(2) again in b
    assert stats.total_bytes_saved == 65 - 35
    chunks = await meta.get_chunks([cid(1), cid(2), cid(3), cid(4)])
    assert {k: v.refcount for k, v in chunks.items()} == {cid(1): 2, cid(2): 2, cid(3): 1}
    with pytest.raises(FileNotFound):
        await meta.commit_file(str(uuid.uuid4()), 1.0)


async def test_concurrent_commits_of_identical_content(meta: MetadataStore) -> None:
    files = [new_file(f"same{i}", [(cid("x"), 100), (cid("y"), 50)]) for i in range(8)]
    for rec, manifest in files:
        await meta.create_file(rec, manifest)
    await asyncio.gather(*(meta.commit_file(rec.file_id, 1.0) for rec, _ in files))
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (8, 1200, 150)
    assert stats.duplicates_avoided == 14
    chunks = await meta.get_chunks([cid("x"), cid("y")])
    assert [chunks[cid("x")].refcount, chunks[cid("y")].refcount] == [8, 8]


async def test_list_files_pages_complete_files_of_tenant(meta: MetadataStore) -> None:
    ids = []
    for i in range(7):
        rec, manifest = new_file(f"f{i}")
        await meta.create_file(rec, manifest)
        await meta.commit_file(rec.file_id, 1.0)
        ids.append(rec.file_id)
    pending, pm = new_file("pending")
    await meta.create_file(pending, pm)
    other, om = new_file("other", tenant="t2")
    await meta.create_file(other, om)
    await meta.commit_file(other.file_id, 1.0)
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await meta.list_files("t1", limit=3, after=after)
        if not page:
            break
        seen += [f.file_id for f in page]
        after = page[-1].file_id
    assert seen == sorted(ids)


async def test_list_files_by_prefix_lists_only_names_under_it(meta: MetadataStore) -> None:
    """``prefix`` bounds a listing to the names that start with it (a restore of one
    version of a backup lists that version only); pages of it still hold ``limit`` files."""
    under, rest = [], []
    for i, name in enumerate(["v2/a", "v1/a", "v2/b/c", "v2", "v2/é", "x/v2/d", "v2/z", "V2/a"]):
        rec, manifest = new_file(name)
        await meta.create_file(rec, manifest)
        await meta.commit_file(rec.file_id, 1.0)
        (under if name.startswith("v2/") else rest).append(rec.file_id)
        if i == 0:
            hidden, hm = new_file(f"{HIDDEN_NAME_PREFIX}v2/part")
            await meta.create_file(hidden, hm)
            await meta.commit_file(hidden.file_id, 1.0)
    other, om = new_file("v2/a", tenant="t2")
    await meta.create_file(other, om)
    await meta.commit_file(other.file_id, 1.0)
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await meta.list_files("t1", limit=2, after=after, prefix="v2/")
        seen += [f.file_id for f in page]
        if len(page) < 2:
            break
        after = page[-1].file_id
    assert seen == sorted(under)
    everything = await meta.list_files("t1", limit=100, prefix="")
    assert {f.file_id for f in everything} == set(under + rest)
    assert await meta.list_files("t1", limit=10, prefix="nothing/") == []
    # a prefix counts characters, not bytes ("é" is two UTF-8 bytes)
    assert [f.name for f in await meta.list_files("t1", limit=10, prefix="v2/é")] == ["v2/é"]
    assert [f.name for f in await meta.list_files("t1", limit=10, prefix="v2/b/")] == ["v2/b/c"]


async def test_list_files_leaves_hidden_files_out(meta: MetadataStore) -> None:
    """Files named with HIDDEN_NAME_PREFIX (multipart parts) are in no listing, and a page
    still holds ``limit`` listed files; they are complete files all the same."""
    shown, hidden = [], []
    for i in range(12):
        name = f"{HIDDEN_NAME_PREFIX}part {i}" if i % 3 else f"file {i}"
        rec, manifest = new_file(name)
        await meta.create_file(rec, manifest)
        await meta.commit_file(rec.file_id, 1.0)
        (hidden if i % 3 else shown).append(rec.file_id)
    first = await meta.list_files("t1", limit=2)
    assert [f.file_id for f in first] == sorted(shown)[:2]
    rest = await meta.list_files("t1", limit=10, after=first[-1].file_id)
    assert [f.file_id for f in rest] == sorted(shown)[2:]
    for file_id in hidden:
        got = await meta.get_file(file_id, "t1")
        assert (got.state, got.name.startswith(HIDDEN_NAME_PREFIX)) == (FILE_COMPLETE, True)


async def test_locations(meta: MetadataStore) -> None:
    await meta.add_locations([Location(cid(1), "n1", 10), Location(cid(1), "n2", 10)], 1.0)
    await meta.add_locations([Location(cid(1), "n1", 10)], 2.0)  # idempotent
    locs = await meta.get_locations([cid(1), cid(2)])
    assert locs == {cid(1): {"n1", "n2"}, cid(2): set()}
    chunks = await meta.get_chunks([cid(1)])
    assert chunks[cid(1)].size == 10
    assert chunks[cid(1)].refcount == 0
    await meta.remove_locations([Location(cid(1), "n1", 10), Location(cid(9), "n1", 1)])
    assert (await meta.get_locations([cid(1)])) == {cid(1): {"n2"}}


async def test_a_surplus_copy_is_forgotten_only_while_the_kept_ones_are_recorded(
    meta: MetadataStore,
) -> None:
    """Two trims that each counted copies n1, n2, n3 at factor 2: the first forgets n3
    keeping n1 and n2; the second, keeping n1 and n3, is refused and n2 stays. So is a
    copy not recorded, one on a chunk unknown, and one kept on a node never seen."""
    c = cid("surplus")
    await meta.add_locations([Location(c, n, 7) for n in ("n1", "n2", "n3")], 1.0)
    assert await meta.remove_surplus_location(Location(c, "n3", 7), {"n1", "n2"})
    assert not await meta.remove_surplus_location(Location(c, "n2", 7), {"n1", "n3"})
    assert not await meta.remove_surplus_location(Location(c, "n3", 7), {"n1"})
    assert not await meta.remove_surplus_location(Location(cid("none"), "n1", 7), set())
    assert not await meta.remove_surplus_location(Location(c, "n2", 7), {"n1", "n9"})
    assert await meta.get_locations([c]) == {c: {"n1", "n2"}}
    assert await meta.node_chunks("n3", limit=10) == []
    assert await meta.node_chunks("n2", limit=10) == [c]
    with pytest.raises(ValueError, match="both removed and kept"):
        await meta.remove_surplus_location(Location(c, "n1", 7), {"n1", "n2"})
    assert await meta.remove_surplus_location(Location(c, "n2", 7), {"n1"})
    assert await meta.get_locations([c]) == {c: {"n1"}}


async def test_many_locations_in_one_call(meta: MetadataStore) -> None:
    ids = [cid(i) for i in range(1200)]
    await meta.add_locations([Location(c, "n1", 1) for c in ids], 1.0)
    locs = await meta.get_locations(ids)
    assert len(locs) == 1200
    assert all(v == {"n1"} for v in locs.values())


# --- scale and concurrency (every backend) ---------------------------------------------------


async def test_list_files_pages_through_many_files(meta: MetadataStore, seed_files) -> None:
    # 10,000 files on SQLite; 2,500 (still three full pages and a short one) on moto's
    # server, whose ~300 writes/s made the seeding most of a minute and a half in CI
    n = 10_000 if isinstance(meta, SqliteMetadataStore) else 2_500
    recs = [
        FileRecord(
            str(uuid.uuid4()),
            f"f{i}",
            i,
            cid(i),
            "fixed:4096",
            tenant="t1",
            state=FILE_COMPLETE,
            created_at=float(i),
        )
        for i in range(n)
    ]
    others = [dataclasses.replace(r, file_id=str(uuid.uuid4()), tenant="t2") for r in recs[:5]]
    await seed_files(meta, recs + others)
    seen: list[FileRecord] = []
    after = None
    for _ in range(100):
        page = await meta.list_files("t1", limit=997, after=after)
        if not page:
            break
        assert len(page) <= 997
        seen += page
        after = page[-1].file_id
    assert [f.file_id for f in seen] == sorted(r.file_id for r in recs)
    by_id = {r.file_id: r for r in recs}
    assert all(f == by_id[f.file_id] for f in seen)


async def test_16_concurrent_commits_of_identical_content_are_exact(meta: MetadataStore) -> None:
    files = [
        new_file(f"s{i}", [(cid("x"), 100), (cid("y"), 50), (cid("x"), 100)]) for i in range(16)
    ]
    for rec, manifest in files:
        await meta.create_file(rec, manifest)
    done = await asyncio.gather(*(meta.commit_file(rec.file_id, 1.0) for rec, _ in files))
    assert all(f.state == FILE_COMPLETE for f in done)
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes) == (16, 16 * 250)
    assert (stats.stored_bytes, stats.unique_chunks) == (150, 2)
    assert stats.duplicates_avoided == 16 * 3 - 2
    chunks = await meta.get_chunks([cid("x"), cid("y")])
    assert (chunks[cid("x")].refcount, chunks[cid("y")].refcount) == (32, 16)


async def test_commit_of_many_distinct_chunks_is_exact(meta: MetadataStore) -> None:
    # More distinct chunks than fit one DynamoDB transaction; the same file committed twice
    # concurrently and an identical file beside it.
    content = [(cid(f"big{i}"), 7) for i in range(250)] + [(cid("big0"), 7)]
    a, ma = new_file("a", content)
    b, mb = new_file("b", content)
    await meta.create_file(a, ma)
    await meta.create_file(b, mb)
    await asyncio.gather(
        meta.commit_file(a.file_id, 1.0),
        meta.commit_file(a.file_id, 1.0),
        meta.commit_file(b.file_id, 1.0),
    )
    assert (await meta.commit_file(a.file_id, 2.0)).state == FILE_COMPLETE
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes) == (2, 2 * 251 * 7)
    assert (stats.stored_bytes, stats.unique_chunks) == (250 * 7, 250)
    assert stats.duplicates_avoided == 2 * 251 - 250
    chunks = await meta.get_chunks([c for c, _ in content])
    assert chunks[cid("big0")].refcount == 4
    assert {chunks[cid(f"big{i}")].refcount for i in range(1, 250)} == {2}


async def test_node_whose_heartbeat_stopped_is_not_live(meta: MetadataStore) -> None:
    now = time.time()
    stale = NodeRecord("n1", "127.0.0.1", 1, "z1", 100, 10, last_heartbeat=now, expires_at=now + 15)
    fresh = NodeRecord("n2", "::1", 2, last_heartbeat=now, expires_at=now + 1000)
    await meta.upsert_node(stale)
    await meta.upsert_node(fresh)
    assert await meta.list_live_nodes(now) == [stale, fresh]
    # No heartbeat for n1 since: past its expires_at it is dead, though its entry still exists
    # (DynamoDB deletes expired items hours late; moto never does).
    assert await meta.list_live_nodes(now + 16) == [fresh]
    assert {n.node_id for n in await meta.list_nodes()} == {"n1", "n2"}


async def test_manifest_of_100k_entries_round_trips(meta: MetadataStore) -> None:
    n, size = 100_000, 1 << 20  # 100 GiB at 1 MiB
    manifest = [ManifestEntry(i * size, size, cid(f"m{i}")) for i in range(n)]
    rec = FileRecord(
        str(uuid.uuid4()),
        "huge",
        n * size,
        cid("huge"),
        "fastcdc",
        "t1",
        created_at=1.0,
        chunk_count=n,
    )
    calls = getattr(meta, "calls", None)
    await meta.create_file(rec, manifest)
    assert await meta.get_manifest(rec.file_id) == manifest
    assert (await meta.get_file(rec.file_id)).chunk_count == n
    if calls is not None:  # a handful of requests, not one per entry
        assert meta.calls - calls <= 10  # type: ignore[attr-defined]


async def test_get_locations_beyond_one_batch(meta: MetadataStore) -> None:
    ids = [cid(f"loc{i}") for i in range(250)]
    await meta.add_locations(
        [Location(c, "n1", 1) for c in ids] + [Location(c, "n2", 1) for c in ids[::2]], 1.0
    )
    unknown = [cid(f"nope{i}") for i in range(30)]
    calls = getattr(meta, "calls", None)
    got = await meta.get_locations(ids + unknown + ids[:5])
    assert set(got) == set(ids) | set(unknown)
    assert all(got[c] == ({"n1", "n2"} if i % 2 == 0 else {"n1"}) for i, c in enumerate(ids))
    assert all(got[c] == set() for c in unknown)
    if type(meta).__name__ == "DynamoMetadataStore":  # 280 distinct ids: 3 BatchGetItem calls
        assert meta.calls - calls == 3  # type: ignore[attr-defined]


async def test_owned_chunks_are_per_tenant(meta: MetadataStore) -> None:
    a, ma = new_file("a", [(cid(1), 10), (cid(2), 20)], tenant="t1")
    b, mb = new_file("b", [(cid(2), 20), (cid(3), 5)], tenant="t2")
    pending, mp = new_file("p", [(cid(4), 1)], tenant="t1")
    for rec, manifest in ((a, ma), (b, mb), (pending, mp)):
        await meta.create_file(rec, manifest)
    await meta.commit_file(a.file_id, 1.0)
    await meta.commit_file(b.file_id, 1.0)
    ids = [cid(i) for i in range(1, 6)]
    assert await meta.owned_chunks("t1", ids) == {cid(1), cid(2)}
    assert await meta.owned_chunks("t2", ids) == {cid(2), cid(3)}
    assert await meta.owned_chunks("t3", ids) == set()


async def test_tenants_and_tokens(meta: MetadataStore) -> None:
    assert await meta.list_tenants() == []
    assert not await meta.tenant_exists("acme")
    await meta.create_tenant("acme", 1.0)
    await meta.create_tenant("globex", 2.0)
    with pytest.raises(Conflict):
        await meta.create_tenant("acme", 3.0)
    assert await meta.tenant_exists("acme")
    assert await meta.list_tenants() == ["acme", "globex"]
    rec = TokenRecord(cid("token"), "acme", "user", "ci", 5.0)
    await meta.put_token(rec)
    with pytest.raises(Conflict):
        await meta.put_token(rec)
    assert await meta.get_token(cid("token")) == rec
    assert await meta.get_token(cid("other")) is None
    empty_label = TokenRecord(cid("t2"), "globex", "admin", "", 6.0)
    await meta.put_token(empty_label)
    assert await meta.get_token(cid("t2")) == empty_label


async def test_tokens_are_listed_per_tenant_and_deleted(meta: MetadataStore) -> None:
    old = TokenRecord(cid("a"), "acme", "user", "ci", 5.0)
    new = TokenRecord(cid("b"), "acme", "admin", "", 7.0)
    other = TokenRecord(cid("c"), "globex", "user", "x", 6.0)
    for rec in (new, other, old):
        await meta.put_token(rec)
    assert await meta.list_tokens("acme") == [old, new]  # oldest first
    assert await meta.list_tokens() == [old, other, new]
    assert await meta.list_tokens("nobody") == []
    assert await meta.delete_token(cid("a"))
    assert not await meta.delete_token(cid("a"))  # gone: nothing to delete
    assert await meta.get_token(cid("a")) is None
    assert await meta.list_tokens("acme") == [new]


async def test_node_sequence_accepts_only_newer_beats_or_a_new_boot(meta: MetadataStore) -> None:
    assert await meta.advance_node_sequence("n1", 10, 1)
    assert not await meta.advance_node_sequence("n1", 10, 1)  # a replay
    assert await meta.advance_node_sequence("n1", 10, 5)
    assert not await meta.advance_node_sequence("n1", 10, 4)  # older
    assert await meta.advance_node_sequence("n2", 10, 1)  # per node
    assert await meta.advance_node_sequence("n1", 11, 0)  # the node restarted
    assert not await meta.advance_node_sequence("n1", 11, 0)
    assert await meta.advance_node_sequence("n1", 11, 1)


async def test_node_sequence_refuses_every_beat_of_an_earlier_boot(meta: MetadataStore) -> None:
    """A beat captured before the node restarted is refused after it, whatever its seq: boot
    numbers only grow (issue 12 item 7)."""
    big = (1 << 63) - 1
    assert await meta.advance_node_sequence("n1", 1_700_000_000_000, 40)
    assert await meta.advance_node_sequence("n1", 1_700_000_000_001, 1)  # restarted
    assert not await meta.advance_node_sequence("n1", 1_700_000_000_000, 41)
    assert not await meta.advance_node_sequence("n1", 1_700_000_000_000, big)
    assert not await meta.advance_node_sequence("n1", 0, big)
    assert await meta.advance_node_sequence("n1", 1_700_000_000_001, 2)
    assert await meta.advance_node_sequence("n1", big, 0)
    assert not await meta.advance_node_sequence("n1", big - 1, big)


async def test_concurrent_node_sequences_accept_each_beat_once(meta: MetadataStore) -> None:
    # several API processes: one accepted write per (boot, seq), the highest seq wins
    results = await asyncio.gather(*(meta.advance_node_sequence("n1", 7, s) for s in (3, 3, 3, 3)))
    assert sorted(results) == [False, False, False, True]
    assert not await meta.advance_node_sequence("n1", 7, 2)
    # two boots at once (a replay of the old one racing the new): the old never lands last
    boots = (7, 8, 7, 8, 7)
    results = await asyncio.gather(*(meta.advance_node_sequence("n1", b, 9) for b in boots))
    assert [r for b, r in zip(boots, results, strict=True) if b == 8].count(True) == 1
    assert results.count(True) in (1, 2)  # (7, 9) only if it came before (8, 9)
    assert not await meta.advance_node_sequence("n1", 7, 10)
    assert not await meta.advance_node_sequence("n1", 8, 9)


# --- delete, garbage collection, leases -------------------------------------------------------


async def _committed(meta: MetadataStore, name: str, chunks, tenant: str = "t1") -> FileRecord:
    rec, manifest = new_file(name, chunks, tenant)
    await meta.create_file(rec, manifest)
    return await meta.commit_file(rec.file_id, 5.0)


async def test_delete_drops_references_exactly(meta: MetadataStore) -> None:
    a = await _committed(meta, "a", [(cid(1), 10), (cid(2), 20), (cid(1), 10)])
    b = await _committed(meta, "b", [(cid(2), 20), (cid(3), 5)])
    with pytest.raises(FileNotFound):
        await meta.delete_file(a.file_id, "other-tenant", 9.0)
    assert (await meta.delete_file(a.file_id, "t1", 9.0)).file_id == a.file_id
    with pytest.raises(FileNotFound):
        await meta.get_file(a.file_id)
    with pytest.raises(FileNotFound):
        await meta.delete_file(a.file_id, "t1", 9.0)
    stats = await meta.get_stats()
    # exactly what committing b alone gives
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (1, 25, 25)
    assert (stats.unique_chunks, stats.duplicates_avoided) == (2, 0)
    chunks = await meta.get_chunks([cid(1), cid(2), cid(3)])
    assert {k: v.refcount for k, v in chunks.items()} == {cid(1): 0, cid(2): 1, cid(3): 1}
    assert await meta.owned_chunks("t1", [cid(1), cid(2), cid(3)]) == {cid(2), cid(3)}
    assert await meta.owned_chunks("t1", [cid(1), cid(4)], ever=True) == {cid(1)}
    assert await meta.owned_chunks("t2", [cid(1)], ever=True) == set()
    await meta.delete_file(b.file_id, "t1", 10.0)
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (0, 0, 0)
    assert (stats.unique_chunks, stats.duplicates_avoided) == (0, 0)
    assert await meta.owned_chunks("t1", [cid(1), cid(2), cid(3)]) == set()
    assert await meta.list_files("t1", limit=10) == []


async def test_delete_of_a_pending_file_counts_nothing(meta: MetadataStore) -> None:
    await _committed(meta, "a", [(cid(1), 10)])
    rec, manifest = new_file("p", [(cid(1), 10)])
    await meta.create_file(rec, manifest)
    await meta.delete_file(rec.file_id, "t1", 9.0)
    stats = await meta.get_stats()
    assert (stats.total_files, stats.stored_bytes) == (1, 10)
    assert (await meta.get_chunks([cid(1)]))[cid(1)].refcount == 1


async def test_concurrent_deletes_and_commits_stay_exact(meta: MetadataStore) -> None:
    content = [(cid("x"), 100), (cid("y"), 50)]
    old = [await _committed(meta, f"old{i}", content) for i in range(4)]
    new = [new_file(f"new{i}", content) for i in range(4)]
    for rec, manifest in new:
        await meta.create_file(rec, manifest)
    await asyncio.gather(
        *(meta.delete_file(f.file_id, "t1", 9.0) for f in old),
        *(meta.commit_file(rec.file_id, 9.0) for rec, _ in new),
    )
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (4, 600, 150)
    assert (stats.unique_chunks, stats.duplicates_avoided) == (2, 6)
    chunks = await meta.get_chunks([cid("x"), cid("y")])
    assert [chunks[cid("x")].refcount, chunks[cid("y")].refcount] == [4, 4]


async def test_delete_of_a_file_of_many_distinct_chunks_is_exact(meta: MetadataStore) -> None:
    content = [(cid(f"big{i}"), 7) for i in range(250)]
    a = await _committed(meta, "a", content)
    b = await _committed(meta, "b", content[:10])
    await meta.delete_file(a.file_id, "t1", 9.0)
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (1, 70, 70)
    assert (stats.unique_chunks, stats.duplicates_avoided) == (10, 0)
    chunks = await meta.get_chunks([c for c, _ in content])
    assert {chunks[c].refcount for c, _ in content[:10]} == {1}
    assert {chunks[c].refcount for c, _ in content[10:]} == {0}
    assert [f.file_id for f in await meta.list_files("t1", limit=10)] == [b.file_id]


async def test_gc_deletes_only_unreferenced_chunks_past_the_cutoff(meta: MetadataStore) -> None:
    a = await _committed(meta, "a", [(cid(1), 10), (cid(2), 20)])
    await meta.add_locations([Location(cid(1), "n1", 10), Location(cid(1), "n2", 10)], 1.0)
    await meta.add_locations([Location(cid(9), "n1", 3)], 1.0)  # sent, never committed
    # referenced: never
    assert await meta.delete_chunk_if_unreferenced(cid(1), 1e9) is None
    await meta.delete_file(a.file_id, "t1", 100.0)
    states = {c.chunk_id: c for c in await meta.scan_chunks(limit=100)}
    assert states[cid(1)].refcount == 0
    assert states[cid(1)].zero_since == 100.0
    assert states[cid(1)].nodes == {"n1", "n2"}
    # unreferenced since 100: not before the cutoff passes it
    assert await meta.delete_chunk_if_unreferenced(cid(1), 100.0) is None
    assert await meta.delete_chunk_if_unreferenced(cid(1), 101.0) == {"n1", "n2"}
    assert await meta.get_locations([cid(1)]) == {cid(1): set()}
    assert cid(1) not in await meta.get_chunks([cid(1)])
    assert await meta.delete_chunk_if_unreferenced(cid(9), 2.0) == {"n1"}
    assert await meta.delete_chunk_if_unreferenced(cid(9), 2.0) is None


async def test_scan_chunks_pages_through_every_chunk(meta: MetadataStore) -> None:
    await meta.add_locations([Location(cid(i), "n1", i + 1) for i in range(23)], 1.0)
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await meta.scan_chunks(limit=5, after=after)
        if not page:
            break
        seen += [c.chunk_id for c in page]
        after = page[-1].chunk_id
    assert sorted(seen) == sorted(cid(i) for i in range(23))


async def test_recent_pending_chunks(meta: MetadataStore) -> None:
    await _committed(meta, "done", [(cid(1), 10)])
    old, mold = new_file("old", [(cid(2), 10)])
    await meta.create_file(dataclasses.replace(old, created_at=10.0), mold)
    new, mnew = new_file("new", [(cid(3), 10), (cid(1), 10)])
    await meta.create_file(dataclasses.replace(new, created_at=50.0), mnew)
    assert await meta.recent_pending_chunks(20.0) == {cid(1), cid(3)}
    assert await meta.recent_pending_chunks(5.0) == {cid(1), cid(2), cid(3)}


async def test_lease_is_held_by_one_owner_until_it_expires(meta: MetadataStore) -> None:
    assert await meta.get_lease("repair") is None
    assert await meta.acquire_lease("repair", "a", 100.0, 10.0, "x")
    assert not await meta.acquire_lease("repair", "b", 105.0, 10.0)
    assert await meta.acquire_lease("repair", "a", 105.0, 10.0, "y")  # renewal
    lease = await meta.get_lease("repair")
    assert lease is not None
    assert (lease.owner, lease.expires_at, lease.info) == ("a", 115.0, "y")
    results = await asyncio.gather(
        *(meta.acquire_lease("repair", f"o{i}", 200.0, 10.0) for i in range(6))
    )
    assert sum(results) == 1


async def test_deregistered_node_stays_as_a_dead_tombstone(meta: MetadataStore) -> None:
    await meta.upsert_node(NodeRecord("n1", "127.0.0.1", 1, last_heartbeat=90.0, expires_at=200.0))
    await meta.deregister_node("n1", 100.0)
    assert await meta.list_live_nodes(100.0) == []
    [tomb] = await meta.list_nodes()
    assert (tomb.node_id, tomb.expires_at, tomb.status, tomb.last_heartbeat) == (
        "n1",
        100.0,
        "down",
        90.0,
    )
    # never extends an entry that already expired, never creates one
    await meta.deregister_node("n1", 150.0)
    assert [n.expires_at for n in await meta.list_nodes()] == [100.0]
    await meta.deregister_node("ghost", 100.0)
    assert [n.node_id for n in await meta.list_nodes()] == ["n1"]
    # a heartbeat (the node restarted) replaces the tombstone
    await meta.upsert_node(NodeRecord("n1", "127.0.0.1", 1, expires_at=300.0))
    assert [n.node_id for n in await meta.list_live_nodes(250.0)] == ["n1"]


async def test_a_heartbeat_overtaken_by_the_deregistration_changes_nothing(
    meta: MetadataStore,
) -> None:
    """Two API processes may write a node's calls out of order (each call's sequence is
    accepted first, its entry written after): the entry keeps the latest call's write."""
    boot = 1_700_000_000_000

    def beat(seq: int, expires_at: float, used: int = 0) -> NodeRecord:
        return NodeRecord(
            "n1", "127.0.0.1", 1, used_bytes=used, expires_at=expires_at, boot=boot, seq=seq
        )

    assert await meta.upsert_node(beat(1, 200.0))
    await meta.deregister_node("n1", 100.0, boot, 3)  # the node's last call, written first
    assert not await meta.upsert_node(beat(2, 300.0))  # the heartbeat before it, written late
    [tomb] = await meta.list_nodes()
    assert (tomb.status, tomb.expires_at, tomb.boot, tomb.seq) == ("down", 100.0, boot, 3)
    assert await meta.list_live_nodes(150.0) == []
    # heartbeats written out of order: the later one's figures stay
    assert await meta.upsert_node(NodeRecord("n2", "127.0.0.1", 2, boot=boot, seq=5, used_bytes=50))
    assert not await meta.upsert_node(
        NodeRecord("n2", "127.0.0.1", 2, boot=boot, seq=4, used_bytes=40)
    )
    assert [n.used_bytes for n in await meta.list_nodes() if n.node_id == "n2"] == [50]
    # a late deregistration leaves a later heartbeat's entry up
    assert await meta.upsert_node(
        NodeRecord("n2", "127.0.0.1", 2, boot=boot, seq=6, expires_at=400.0)
    )
    await meta.deregister_node("n2", 150.0, boot, 5)
    assert [n.node_id for n in await meta.list_live_nodes(300.0)] == ["n2"]
    # an entry that expired already (its heartbeats failed for a while) is recorded down by
    # the deregistration all the same: the heartbeat it overtook stays unwritten
    assert await meta.upsert_node(
        NodeRecord("n3", "127.0.0.1", 3, expires_at=200.0, boot=boot, seq=1)
    )
    await meta.deregister_node("n3", 300.0, boot, 3)
    assert not await meta.upsert_node(
        NodeRecord("n3", "127.0.0.1", 3, expires_at=330.0, boot=boot, seq=2)
    )
    [n3] = [n for n in await meta.list_nodes() if n.node_id == "n3"]
    assert (n3.status, n3.expires_at, n3.seq) == ("down", 200.0, 3)
    # the node restarted (a greater boot): its first heartbeat replaces the tombstone
    assert await meta.upsert_node(
        NodeRecord("n1", "127.0.0.1", 1, expires_at=500.0, boot=boot + 1, seq=1)
    )
    assert "n1" in [n.node_id for n in await meta.list_live_nodes(450.0)]
    # a write no call orders (a node writing the store itself) still always applies
    assert await meta.upsert_node(NodeRecord("n1", "127.0.0.1", 1, expires_at=600.0))
    assert [n.expires_at for n in await meta.list_nodes() if n.node_id == "n1"] == [600.0]


async def test_node_entry_keeps_its_disk_identity(meta: MetadataStore) -> None:
    """Repair compares a node's disk identity across heartbeats (a wiped disk has another):
    every backend stores it, a heartbeat replaces it, a tombstone keeps it."""
    await meta.upsert_node(NodeRecord("n1", "127.0.0.1", 1, expires_at=200.0, disk_id="d-a"))
    await meta.upsert_node(NodeRecord("n2", "127.0.0.1", 2, expires_at=200.0))
    assert {n.node_id: n.disk_id for n in await meta.list_nodes()} == {"n1": "d-a", "n2": ""}
    await meta.deregister_node("n1", 100.0)
    assert [n.disk_id for n in await meta.list_nodes() if n.node_id == "n1"] == ["d-a"]
    await meta.upsert_node(NodeRecord("n1", "127.0.0.1", 1, expires_at=300.0, disk_id="d-b"))
    [live] = [n for n in await meta.list_live_nodes(250.0) if n.node_id == "n1"]
    assert live.disk_id == "d-b"


async def test_node_chunks_pages_the_by_node_index(meta: MetadataStore) -> None:
    await meta.add_locations([Location(cid(i), "n1", 5) for i in range(12)], 1.0)
    await meta.add_locations([Location(cid(i), "n2", 5) for i in range(3)], 1.0)
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await meta.node_chunks("n1", limit=5, after=after)
        seen += page
        if len(page) < 5:
            break
        after = page[-1]
    assert seen == sorted(cid(i) for i in range(12))
    assert await meta.node_chunks("n2", limit=100) == sorted(cid(i) for i in range(3))
    await meta.remove_locations([Location(cid(0), "n2", 5)])
    assert cid(0) not in await meta.node_chunks("n2", limit=100)
    assert await meta.node_chunks("nobody", limit=100) == []
    await meta.add_locations([Location(cid(0), "n2", 5)], 1.0)
    await meta.delete_chunk_if_unreferenced(cid(0), 1e9)
    assert cid(0) not in await meta.node_chunks("n1", limit=100)


async def test_stale_pending_files_are_deleted_only_while_pending(meta: MetadataStore) -> None:
    done = await _committed(meta, "done", [(cid(1), 10)])
    old, mold = new_file("old", [(cid(2), 10)])
    old = dataclasses.replace(old, created_at=10.0)
    await meta.create_file(old, mold)
    new, mnew = new_file("new", [(cid(3), 10)])
    await meta.create_file(dataclasses.replace(new, created_at=50.0), mnew)
    stale = await meta.stale_pending_files(20.0, limit=10)
    assert [f.file_id for f in stale] == [old.file_id]
    assert done.file_id not in {f.file_id for f in await meta.stale_pending_files(1e9, limit=10)}
    assert not await meta.delete_pending_file(new.file_id, 20.0)  # not old enough
    assert not await meta.delete_pending_file(done.file_id, 1e9)  # complete: never
    assert await meta.delete_pending_file(old.file_id, 20.0)
    assert not await meta.delete_pending_file(old.file_id, 20.0)
    with pytest.raises(FileNotFound):
        await meta.get_manifest(old.file_id)
    with pytest.raises(FileNotFound):
        await meta.commit_file(old.file_id, 60.0)  # a finalize that lost the race
    assert (await meta.get_stats()).total_files == 1


async def test_a_committed_file_is_not_deleted_as_stale(meta: MetadataStore) -> None:
    rec, manifest = new_file("racing", [(cid(4), 10)])
    rec = dataclasses.replace(rec, created_at=10.0)
    await meta.create_file(rec, manifest)
    committed, deleted = await asyncio.gather(
        meta.commit_file(rec.file_id, 20.0),
        meta.delete_pending_file(rec.file_id, 20.0),
        return_exceptions=True,
    )
    if deleted is True:  # the TTL won: the finalize failed cleanly, nothing counted
        assert isinstance(committed, FileNotFound)
        assert (await meta.get_stats()).total_files == 0
    else:  # the finalize won: the file is complete and counted
        assert deleted is False
        assert not isinstance(committed, BaseException)
        assert committed.state == FILE_COMPLETE
        assert (await meta.get_stats()).total_files == 1


async def test_find_file_by_sha256_is_per_tenant_and_first_commit_wins(
    meta: MetadataStore,
) -> None:
    first, m1 = new_file("same", tenant="t1")
    second, m2 = new_file("same", tenant="t1")  # same whole-file sha256 (cid("same"))
    theirs, m3 = new_file("same", tenant="t2")
    for rec, m in ((first, m1), (second, m2), (theirs, m3)):
        await meta.create_file(rec, m)
    assert await meta.find_file_by_sha256("t1", first.sha256) is None  # pending is not found
    await meta.commit_file(first.file_id, 1.0)
    await meta.commit_file(second.file_id, 2.0)
    found = await meta.find_file_by_sha256("t1", first.sha256)
    assert found is not None
    assert found.file_id == first.file_id
    assert found.state == FILE_COMPLETE
    assert await meta.find_file_by_sha256("t2", first.sha256) is None  # not yet committed
    await meta.commit_file(theirs.file_id, 3.0)
    found2 = await meta.find_file_by_sha256("t2", first.sha256)
    assert found2 is not None
    assert found2.file_id == theirs.file_id
    assert await meta.find_file_by_sha256("t3", first.sha256) is None
    assert await meta.find_file_by_sha256("t1", cid("other")) is None


async def test_find_file_by_sha256_names_only_verified_files(meta: MetadataStore) -> None:
    """A false claim committed first never holds the entry verified bytes are found by: the
    verified file committed later is the one named (issue 12 item 6)."""
    claim, mc = new_file("content", chunks=[(cid("decoy"), 5)], verified=False)
    real, mr = new_file("content", chunks=[(cid("real"), 7)])
    later, ml = new_file("content", chunks=[(cid("real"), 7)])
    for rec, m in ((claim, mc), (real, mr), (later, ml)):
        await meta.create_file(rec, m)
    assert (await meta.get_file(claim.file_id)).sha256_verified is False
    assert (await meta.get_file(real.file_id)).sha256_verified is True
    done = await meta.commit_file(claim.file_id, 1.0)
    assert done.sha256_verified is False
    assert await meta.find_file_by_sha256("t1", claim.sha256) is None
    found_claim = await meta.find_file_by_sha256("t1", claim.sha256, verified=False)
    assert found_claim is not None
    assert found_claim.file_id == claim.file_id
    assert found_claim.sha256_verified is False
    done = await meta.commit_file(real.file_id, 2.0)
    assert done.sha256_verified is True
    await meta.commit_file(later.file_id, 3.0)
    found = await meta.find_file_by_sha256("t1", claim.sha256)
    assert found is not None
    assert (found.file_id, found.sha256_verified) == (real.file_id, True)
    again = await meta.find_file_by_sha256("t1", claim.sha256, verified=False)
    assert again is not None
    assert again.file_id == claim.file_id  # claims keep their own entry
    # deletes hand each entry on within its own kind only
    await meta.delete_file(real.file_id, "t1", 4.0)
    found = await meta.find_file_by_sha256("t1", claim.sha256)
    assert found is not None
    assert found.file_id == later.file_id
    await meta.delete_file(later.file_id, "t1", 5.0)
    assert await meta.find_file_by_sha256("t1", claim.sha256) is None
    still = await meta.find_file_by_sha256("t1", claim.sha256, verified=False)
    assert still is not None
    assert still.file_id == claim.file_id
    await meta.delete_file(claim.file_id, "t1", 6.0)
    assert await meta.find_file_by_sha256("t1", claim.sha256, verified=False) is None


async def test_a_claim_found_true_moves_to_the_verified_entry(meta: MetadataStore) -> None:
    """mark_sha256_verified: a claimed file an API process hashed joins the verified files
    (named if none is) and hands its claim's entry on, in one step; idempotent."""
    first, m1 = new_file("c", chunks=[(cid("c1"), 5)], verified=False)
    second, m2 = new_file("c", chunks=[(cid("c2"), 5)], verified=False)
    pending, m3 = new_file("c", chunks=[(cid("c3"), 5)], verified=False)
    for rec, m in ((first, m1), (second, m2), (pending, m3)):
        await meta.create_file(rec, m)
    await meta.commit_file(first.file_id, 1.0)
    await meta.commit_file(second.file_id, 2.0)
    assert await meta.mark_sha256_verified(pending.file_id) is None  # not complete
    assert await meta.mark_sha256_verified(str(uuid.uuid4())) is None  # no such file
    assert (await meta.get_file(pending.file_id)).sha256_verified is False
    marked = await meta.mark_sha256_verified(first.file_id)
    assert marked is not None
    assert (marked.file_id, marked.sha256_verified) == (first.file_id, True)
    assert (await meta.get_file(first.file_id)).sha256_verified is True
    found = await meta.find_file_by_sha256("t1", first.sha256)
    assert found is not None
    assert (found.file_id, found.sha256_verified) == (first.file_id, True)
    claim = await meta.find_file_by_sha256("t1", first.sha256, verified=False)
    assert claim is not None
    assert claim.file_id == second.file_id  # the claim's entry was handed on
    again = await meta.mark_sha256_verified(first.file_id)  # idempotent
    assert again is not None
    assert again.sha256_verified is True
    await meta.mark_sha256_verified(second.file_id)  # joins, the first verified keeps it
    found = await meta.find_file_by_sha256("t1", first.sha256)
    assert found is not None
    assert found.file_id == first.file_id
    assert await meta.find_file_by_sha256("t1", first.sha256, verified=False) is None
    await meta.delete_file(first.file_id, "t1", 3.0)
    found = await meta.find_file_by_sha256("t1", first.sha256)
    assert found is not None
    assert found.file_id == second.file_id


async def test_find_file_by_sha256_after_concurrent_commits(meta: MetadataStore) -> None:
    files = [new_file("dup", tenant="t1") for _ in range(6)]
    for rec, m in files:
        await meta.create_file(rec, m)
    await asyncio.gather(*(meta.commit_file(rec.file_id, 1.0) for rec, _ in files))
    found = {await meta.find_file_by_sha256("t1", files[0][0].sha256) for _ in range(3)}
    assert len(found) == 1  # one winner, stable
    winner = found.pop()
    assert winner is not None
    assert winner.file_id in {rec.file_id for rec, _ in files}


async def test_find_file_by_sha256_of_a_big_file(meta: MetadataStore) -> None:
    # more distinct chunks than fit one DynamoDB transaction: the batched commit path
    rec, m = new_file("big", chunks=[(cid(f"big{i}"), 100) for i in range(120)])
    await meta.create_file(rec, m)
    await meta.commit_file(rec.file_id, 1.0)
    found = await meta.find_file_by_sha256("t1", rec.sha256)
    assert found is not None
    assert found.file_id == rec.file_id


async def test_list_chunk_ids_pages_referenced_chunks_once(meta: MetadataStore) -> None:
    ids = {cid(f"page{i}") for i in range(11)}
    a, ma = new_file("a", chunks=[(c, 10) for c in sorted(ids)[:6]])
    b, mb = new_file("b", chunks=[(c, 10) for c in sorted(ids)[5:]], tenant="t2")
    for rec, m in ((a, ma), (b, mb)):
        await meta.create_file(rec, m)
        await meta.commit_file(rec.file_id, 1.0)
    # a chunk with a copy but no complete file referencing it is not listed
    await meta.add_locations([Location(cid("orphan"), "n1", 5)], 1.0)
    seen: list[str] = []
    after: str | None = None
    for _ in range(50):
        page, after = await meta.list_chunk_ids(limit=3, after=after)
        assert len(page) <= 3
        seen += page
        if after is None:
            break
    assert after is None
    assert sorted(seen) == sorted(ids)
    everything, cursor = await meta.list_chunk_ids(limit=1000)
    assert set(everything) == ids
    assert cursor is None


@pytest.mark.parametrize("distinct", [2, 60])  # 60: more than one DynamoDB transaction holds
async def test_delete_hands_the_content_entry_to_another_complete_file(
    meta: MetadataStore, distinct: int
) -> None:
    content = [(cid(f"h{distinct}-{i}"), 5) for i in range(distinct)]
    same = [new_file("same", content, tenant="t1") for _ in range(3)]
    theirs, m_theirs = new_file("same", content, tenant="t2")
    pending, m_pending = new_file("same", content, tenant="t1")
    for rec, m in (*same, (theirs, m_theirs), (pending, m_pending)):
        await meta.create_file(rec, m)
    for rec, _ in (*same, (theirs, m_theirs)):
        await meta.commit_file(rec.file_id, 1.0)
    sha = same[0][0].sha256
    ids = {rec.file_id for rec, _ in same}

    async def named(tenant: str = "t1") -> str | None:
        found = await meta.find_file_by_sha256(tenant, sha)
        return None if found is None else found.file_id

    first = await named()
    assert first in ids
    # deleting a file the entry does not name leaves it alone
    other = sorted(ids - {first})[0]
    await meta.delete_file(other, "t1", 2.0)
    assert await named() == first
    # deleting the named one hands the entry to the last complete file (never the pending one)
    await meta.delete_file(first, "t1", 3.0)
    last = await named()
    assert last == (ids - {first, other}).pop()
    await meta.delete_file(last, "t1", 4.0)
    assert await named() is None
    assert await named("t2") == theirs.file_id  # another tenant's entry is its own
    # a file committed afterwards takes the entry again
    await meta.commit_file(pending.file_id, 5.0)
    assert await named() == pending.file_id
    await meta.delete_file(pending.file_id, "t1", 6.0)
    assert await named() is None


async def test_create_files_and_commit_files_count_like_single_calls(meta: MetadataStore) -> None:
    a, ma = new_file("a", [(cid(1), 10), (cid(2), 20), (cid(1), 10)])
    b, mb = new_file("b", [(cid(2), 20), (cid(3), 5)])
    c, mc = new_file("c", [(cid(3), 5)], tenant="t2")
    await meta.create_files([(a, ma), (b, mb), (c, mc)])
    assert await meta.get_manifest(b.file_id) == mb
    assert (await meta.get_file(c.file_id, "t2")).state == FILE_PENDING
    missing = str(uuid.uuid4())
    # b twice and an unknown id: the second b changes nothing, the unknown one answers None
    done = await meta.commit_files([a.file_id, b.file_id, missing, c.file_id, b.file_id], 5.0)
    assert [d.file_id if d else None for d in done] == [
        a.file_id,
        b.file_id,
        None,
        c.file_id,
        b.file_id,
    ]
    assert all(d.state == FILE_COMPLETE for d in done if d)
    assert (await meta.commit_files([a.file_id], 6.0))[0] is not None  # idempotent
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes) == (3, 40 + 25 + 5)
    assert (stats.stored_bytes, stats.unique_chunks) == (35, 3)
    assert stats.duplicates_avoided == 3  # cid(1) inside a, cid(2) in b, cid(3) in c
    chunks = await meta.get_chunks([cid(1), cid(2), cid(3)])
    assert {k: v.refcount for k, v in chunks.items()} == {cid(1): 2, cid(2): 2, cid(3): 2}
    assert await meta.owned_chunks("t1", [cid(1), cid(2), cid(3)]) == {cid(1), cid(2), cid(3)}
    assert await meta.owned_chunks("t2", [cid(1), cid(2), cid(3)]) == {cid(3)}
    assert (await meta.find_file_by_sha256("t1", a.sha256)) is not None


async def test_pending_uploads_reads_a_batch_like_get_file_and_get_manifest(
    meta: MetadataStore,
) -> None:
    a, ma = new_file("a", [(cid(1), 10), (cid(2), 20), (cid(1), 10)])
    b, mb = new_file("b", [(cid(3), 5)])
    other, mo = new_file("o", tenant="t2")
    paged, _ = new_file("p", [])
    paged = dataclasses.replace(paged, size=0, sha256="", chunk_count=0)
    await meta.create_files([(a, ma), (b, mb), (other, mo), (paged, [])])
    await meta.commit_files([b.file_id], 2.0)
    missing = str(uuid.uuid4())
    ids = [a.file_id, b.file_id, other.file_id, missing, paged.file_id, a.file_id]
    got = await meta.pending_uploads(ids, "t1")
    assert got[0] == (await meta.get_file(a.file_id), ma)
    assert got[5] == got[0]
    # complete: its record, no manifest; another tenant's and unknown ids: None
    assert got[1] is not None
    assert (got[1][0].state, got[1][1]) == (FILE_COMPLETE, [])
    assert got[2] is None
    assert got[3] is None
    # a paged upload still open (no sha256 yet): its record, no manifest
    assert got[4] is not None
    assert (got[4][0].file_id, got[4][0].state, got[4][1]) == (paged.file_id, FILE_PENDING, [])


async def test_create_files_refuses_an_existing_id(meta: MetadataStore) -> None:
    a, ma = new_file("a")
    await meta.create_file(a, ma)
    b, mb = new_file("b")
    with pytest.raises(Conflict):
        await meta.create_files([(b, mb), (a, ma)])
    assert (await meta.get_file(a.file_id)).state == FILE_PENDING  # untouched


async def test_concurrent_commit_files_batches_stay_exact(meta: MetadataStore) -> None:
    files = [new_file(f"s{i}", [(cid("x"), 100), (cid("y"), 50)]) for i in range(12)]
    await meta.create_files(files)
    ids = [rec.file_id for rec, _ in files]
    # overlapping batches racing each other and single commits
    await asyncio.gather(
        meta.commit_files(ids[:8], 1.0),
        meta.commit_files(ids[4:], 1.0),
        *(meta.commit_file(f, 1.0) for f in ids[::3]),
    )
    stats = await meta.get_stats()
    assert (stats.total_files, stats.stored_bytes, stats.unique_chunks) == (12, 150, 2)
    assert stats.duplicates_avoided == 12 * 2 - 2
    chunks = await meta.get_chunks([cid("x"), cid("y")])
    assert (chunks[cid("x")].refcount, chunks[cid("y")].refcount) == (12, 12)
