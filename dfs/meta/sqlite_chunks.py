"""Chunks and their copies in the SQLite metadata store.

A chunk's copies are the ``nodes`` of its row (label ids of the node ids); the by-node index
``node_chunks`` keeps, per node, only the first bytes of the ids of the chunks it holds, so a
copy costs a few bytes there instead of a row of two ids and an index entry. Exact answers
always come from the chunk rows: ``node_chunks`` reads the prefixes of a node, then the chunk
rows under each prefix that list the node. A prefix row goes when no chunk under it lists
the node any more.

Garbage collection leaves a tombstone (``chunk_tombstones``) where it deleted a row, kept for
``TOMBSTONE_TTL``: a commit adding a reference to a chunk with no row refuses it if it is
there (``sqlite_refcounts``), as the DynamoDB store's commits refuse its tombstoned items, so
a commit that found the chunk held before garbage collection took it never makes the row
again without a copy. A copy recorded again (``add_locations``) makes a new row, which the
commit then finds.

Functions on the caller's connection, inside its transaction where they write.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Sequence

from dfs.meta.base import ChunkState, Location
from dfs.meta.sqlite_codec import (
    Labels,
    Packed,
    chunk_prefix,
    node_set,
    node_text,
    pack_hex,
    prefix_range,
    rows_in,
    unpack_hex,
)

TOMBSTONE_TTL = 86_400.0
"""Seconds a collected chunk's tombstone is kept at least (wall clock), and the GC grace when
that is longer: longer than a commit can take between the check that found the chunk held
and its write (a paged upload proves a page, then commits up to 0.9 x DFS_GC_GRACE later)."""


def collected_of(db: sqlite3.Connection, keys: Sequence[Packed]) -> list[str]:
    """Which of ``keys`` (chunks with no row) garbage collection deleted lately."""
    sql = "SELECT chunk_id FROM chunk_tombstones WHERE chunk_id IN ({marks})"
    return [unpack_hex(r[0]) for r in rows_in(db, sql, keys)]


def _nodes_under(db: sqlite3.Connection, prefix: Packed, node: int) -> list[Packed]:
    """The stored chunk ids under ``prefix`` whose rows list ``node``."""
    lo, hi = prefix_range(prefix)
    rows = db.execute(
        "SELECT chunk_id, nodes FROM chunks WHERE chunk_id BETWEEN ? AND ? ORDER BY chunk_id",
        (lo, hi),
    )
    return [r[0] for r in rows if node in node_set(r[1])]


def _node_sets(db: sqlite3.Connection, keys: Sequence[Packed]) -> dict[Packed, set[int]]:
    """The copies of each existing chunk row of ``keys``."""
    sql = "SELECT chunk_id, nodes FROM chunks WHERE chunk_id IN ({marks})"
    return {key: node_set(nodes) for key, nodes in rows_in(db, sql, keys)}


NewChunks = dict[Packed, tuple[int, str]]  # chunk key -> (size, node text) of a row to insert

_NEW_CHUNK = "INSERT INTO chunks (chunk_id, size, refcount, created_at, nodes) VALUES (?,?,0,?,?)"


def insert_new_chunks(db: sqlite3.Connection, rows: NewChunks, now: float) -> None:
    """The rows of chunks new to the store, with their copies and no reference yet."""
    db.executemany(_NEW_CHUNK, [(key, size, now, nodes) for key, (size, nodes) in rows.items()])


def add_locations(
    db: sqlite3.Connection,
    labels: Labels,
    locs: Sequence[Location],
    now: float,
    fresh: NewChunks | None = None,
) -> None:
    """Record copies: a chunk new to the store (every chunk a first backup sends) gets its
    row, an existing one the node in its set. The rows are read once (the caller's
    ``BEGIN IMMEDIATE`` keeps them as read) and written in one ``executemany`` each for the
    new and the changed rows (a statement per copy cost more than the rows).

    ``fresh``: the new chunks' rows are not inserted but put there, for the caller to
    insert in the same transaction (``sqlite_refcounts.commit_many`` writes each with its
    first reference: one row write per new chunk instead of an insert and an update)."""
    keys = [pack_hex(loc.chunk_id) for loc in locs]
    before = _node_sets(db, list(dict.fromkeys(keys)))
    new: dict[Packed, tuple[int, set[int]]] = {}  # key -> (size, nodes)
    changed: dict[Packed, set[int]] = {}
    prefixes = set()
    for key, loc in zip(keys, locs, strict=True):
        node = labels.id(db, loc.node_id)
        prefixes.add((node, chunk_prefix(key)))
        nodes = before.get(key)
        if nodes is None:
            new.setdefault(key, (loc.size, set()))[1].add(node)
        elif node not in nodes:
            nodes.add(node)
            changed[key] = nodes
    rows = {key: (size, node_text(nodes)) for key, (size, nodes) in new.items()}
    if fresh is None:
        insert_new_chunks(db, rows, now)
    else:
        fresh.update(rows)
    db.executemany(
        "UPDATE chunks SET nodes=? WHERE chunk_id=?",
        [(node_text(nodes), key) for key, nodes in changed.items()],
    )
    db.executemany("INSERT OR IGNORE INTO node_chunks VALUES (?,?)", sorted(prefixes))


def _forget(db: sqlite3.Connection, key: Packed, node: int) -> None:
    """Drop the by-node entry of ``node`` under ``key``'s prefix unless another chunk there
    still lists it."""
    prefix = chunk_prefix(key)
    if not _nodes_under(db, prefix, node):
        db.execute("DELETE FROM node_chunks WHERE node=? AND prefix=?", (node, prefix))


def remove_locations(db: sqlite3.Connection, labels: Labels, locs: Sequence[Location]) -> None:
    for loc in locs:
        node = labels.find(db, loc.node_id)
        if node is None:
            continue
        key = pack_hex(loc.chunk_id)
        row = db.execute("SELECT nodes FROM chunks WHERE chunk_id=?", (key,)).fetchone()
        if row is None or node not in node_set(row[0]):
            continue
        db.execute(
            "UPDATE chunks SET nodes=? WHERE chunk_id=?",
            (node_text(node_set(row[0]) - {node}), key),
        )
        _forget(db, key, node)


def remove_surplus_location(
    db: sqlite3.Connection, labels: Labels, loc: Location, keep: Collection[str]
) -> bool:
    """``MetadataStore.remove_surplus_location`` within the caller's transaction."""
    if loc.node_id in keep:
        raise ValueError(f"a copy on {loc.node_id} cannot be both removed and kept")
    node = labels.find(db, loc.node_id)
    kept = [labels.find(db, n) for n in keep]
    if node is None or any(k is None for k in kept):
        return False
    key = pack_hex(loc.chunk_id)
    row = db.execute("SELECT nodes FROM chunks WHERE chunk_id=?", (key,)).fetchone()
    nodes = node_set(row[0]) if row is not None else set()
    if node not in nodes or not nodes.issuperset(kept):
        return False
    db.execute("UPDATE chunks SET nodes=? WHERE chunk_id=?", (node_text(nodes - {node}), key))
    _forget(db, key, node)
    return True


def node_names(db: sqlite3.Connection, labels: Labels, text: str) -> set[str]:
    return {labels.name(db, n) for n in node_set(text)}


def chunk_states(
    db: sqlite3.Connection, labels: Labels, limit: int, after: str | None
) -> list[ChunkState]:
    rows = db.execute(
        "SELECT chunk_id, size, refcount, MAX(created_at, unref_at), nodes FROM chunks "
        "WHERE chunk_id > ? ORDER BY chunk_id LIMIT ?",
        (pack_hex(after) if after else "", limit),
    ).fetchall()
    return [
        ChunkState(unpack_hex(r[0]), r[1], r[2], frozenset(node_names(db, labels, r[4])), r[3])
        for r in rows
    ]


def delete_if_unreferenced(
    db: sqlite3.Connection, labels: Labels, chunk_id: str, cutoff: float
) -> set[str] | None:
    key = pack_hex(chunk_id)
    row = db.execute(
        "SELECT refcount, MAX(created_at, unref_at), nodes FROM chunks WHERE chunk_id=?", (key,)
    ).fetchone()
    if row is None or row[0] != 0 or row[1] >= cutoff:
        return None
    db.execute("DELETE FROM chunks WHERE chunk_id=?", (key,))
    # the row's tombstone: a commit that found the chunk held before cannot bring it back
    # without a copy (``sqlite_refcounts``); old ones go as new ones are made
    now = time.time()  # kept a day, or the GC grace (``now - cutoff``) when longer
    keep = max(TOMBSTONE_TTL, now - cutoff)
    db.execute("DELETE FROM chunk_tombstones WHERE gone_at < ?", (now - keep,))
    db.execute("INSERT OR REPLACE INTO chunk_tombstones VALUES (?,?)", (key, now))
    for node in node_set(row[2]):
        _forget(db, key, node)
    return node_names(db, labels, row[2])


def owned_of(db: sqlite3.Connection, tid: int, keys: Sequence[Packed], *, ever: bool) -> set[str]:
    """Which of ``keys`` tenant ``tid`` references (``ever``: or did once): as the chunk's
    first tenant (``chunks.owner``) or in ``tenant_chunks``."""
    floor = -1 if ever else 0
    marks = ",".join("?" * len(keys))
    rows = db.execute(
        f"SELECT chunk_id FROM chunks WHERE owner=? AND owner_refs > ? "
        f"AND chunk_id IN ({marks}) UNION "
        f"SELECT chunk_id FROM tenant_chunks WHERE tenant=? AND refcount > ? "
        f"AND chunk_id IN ({marks})",
        (tid, floor, *keys, tid, floor, *keys),
    )
    return {unpack_hex(r[0]) for r in rows}


def chunks_of_node(
    db: sqlite3.Connection, labels: Labels, node_id: str, limit: int, after: str | None
) -> list[str]:
    """Up to ``limit`` chunk ids recorded on ``node_id``, ascending, after ``after``."""
    node = labels.find(db, node_id)
    if node is None or limit <= 0:
        return []
    start: Packed = chunk_prefix(pack_hex(after)) if after else ""
    floor = pack_hex(after) if after else ""
    prefixes = db.execute(  # the prefix of ``after`` again: others may share it
        "SELECT prefix FROM node_chunks WHERE node=? AND prefix >= ? ORDER BY prefix LIMIT ?",
        (node, start, limit + 1),
    ).fetchall()
    out: list[Packed] = []
    for (prefix,) in prefixes:
        out += [k for k in _nodes_under(db, prefix, node) if _after(k, floor)]
        if len(out) >= limit:
            break
    return [unpack_hex(k) for k in out[:limit]]


def _after(key: Packed, floor: Packed) -> bool:
    """SQLite's order: text before blobs, each in its own order."""
    if isinstance(key, bytes) != isinstance(floor, bytes):
        return isinstance(key, bytes)
    return key > floor  # type: ignore[operator]
