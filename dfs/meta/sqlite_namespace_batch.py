"""Many keys linked in one pass of the SQLite namespace (``put_objects``, what a batch of
``POST /objects-link`` becomes), inside the caller's write transaction.

A folder uploaded into a bucket links thousands of just-uploaded files to keys that have no
version yet. ``put`` (``dfs.meta.sqlite_namespace_writes``) spends ~20 statements on each
and reads the version back. Here the batch's keys, files and file links are read in a few
queries, and every *fresh* entry, a key with no version (named once in the batch) linked to
a complete file of the bucket's tenant that no version links yet (named once too), is
written by ``executemany``: its version and ``ns_current`` rows and its file's links
(``dfs.meta.sqlite_namespace_usage.count_fresh_links``: the file link, both scopes' links,
the scopes' chunk sets once per distinct chunk, the usage sums). For such an entry S3's rules
have nothing to decide: no version to replace, no ``null`` to release, nothing current for
``unless_current`` to find, so the outcome is ``put``'s.

Every other entry (a key with versions, a file linked already or named twice, a file or
bucket that ``put`` refuses) goes through ``put`` itself after the fresh ones, in order, in a
savepoint of its own: it is refused alone, and a key named twice sees the first link.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Sequence

from dfs.errors import DfsError, Unavailable
from dfs.meta.namespace import (
    NULL_VERSION,
    VERSIONING_ENABLED,
    NewObject,
    ObjectVersion,
    PutResult,
    version_of,
)
from dfs.meta.sqlite_codec import (
    STATE_COMPLETE,
    pack_file_id,
    pack_hex,
    rows_in,
    unpack_hex,
    unpack_page,
)
from dfs.meta.sqlite_namespace_files import StoreFiles
from dfs.meta.sqlite_namespace_schema import (
    VERSION_COLUMNS,
    names_json,
    new_version_id,
    pack_version_id,
    pairs_json,
    stored_access,
    stored_etag,
)
from dfs.meta.sqlite_namespace_usage import FreshLink, count_fresh_links
from dfs.meta.sqlite_namespace_writes import load_bucket, put
from dfs.meta.sqlite_refcounts import page_refs
from dfs.meta.sqlite_usage_deltas import UsageDeltas

log = logging.getLogger("dfs.meta")


def put_many(
    files: StoreFiles, objs: Sequence[NewObject], now: float, unless_current: bool
) -> list[PutResult | DfsError]:
    """``put`` of each of ``objs``, in order; each answered by its result or its error."""
    out: list[PutResult | DfsError | None] = [None] * len(objs)
    by_bucket: dict[str, list[int]] = {}
    for i, obj in enumerate(objs):
        by_bucket.setdefault(obj.bucket, []).append(i)
    rest: list[int] = []
    for name, picked in by_bucket.items():
        row, fresh = _fresh_entries(files, name, [objs[i] for i in picked])
        rest += [i for i, link in zip(picked, fresh, strict=True) if link is None]
        links = [(i, link) for i, link in zip(picked, fresh, strict=True) if link is not None]
        if row is not None and links:
            made = _link_fresh(files, row, [link for _, link in links], now)
            for (i, _), version in zip(links, made, strict=True):
                out[i] = PutResult(version)
    for i in sorted(rest):
        out[i] = _put_alone(files, objs[i], now, unless_current)
    return [r for r in out if r is not None]


def _put_alone(
    files: StoreFiles, obj: NewObject, now: float, unless_current: bool
) -> PutResult | DfsError:
    """``put`` in a savepoint of its own: a refusal takes back its rows, labels and sums."""
    db, labels = files.db, files.labels
    sums = None if files.usage is None else UsageDeltas()
    mark = labels.mark()
    db.execute("SAVEPOINT put_alone")
    try:
        done = put(StoreFiles(db, labels, sums), obj, now, unless_current=unless_current)
    except Exception as exc:  # a bug or an error of SQLite's too: this entry's answer
        labels.forget_since(mark)
        if not db.in_transaction:  # SQLite ended the whole transaction (a full disk, I/O)
            raise
        db.execute("ROLLBACK TO put_alone")
        db.execute("RELEASE put_alone")
        if isinstance(exc, DfsError):
            return exc
        log.exception("link of %s/%s failed", obj.bucket, obj.key)
        return Unavailable(f"link failed: {type(exc).__name__}")
    db.execute("RELEASE put_alone")
    if files.usage is not None and sums is not None:
        files.usage.merge(sums)
    return done


def _keys_with_versions(db: sqlite3.Connection, bucket: str, keys: list[str]) -> set[str]:
    sql = "SELECT DISTINCT key FROM ns_versions WHERE bucket=? AND key IN ({marks})"
    return {r[0] for r in rows_in(db, sql, keys, (bucket,))}


def _unlinked_files(
    files: StoreFiles, tenant: str, file_ids: list[str]
) -> dict[str, tuple[int, list[tuple[str, int, int]]]]:
    """Of ``file_ids``, the complete files of ``tenant`` that no version links: each one's
    size and chunk references (``StoreFiles.chunks``'s)."""
    db, packed = files.db, [pack_file_id(f) for f in file_ids]
    sql = "SELECT file_id FROM ns_file_links WHERE file_id IN ({marks})"
    linked = {r[0] for r in rows_in(db, sql, packed)}
    sql = (
        "SELECT file_id, tenant, state, size, sha256, manifest, chunk_count FROM files "
        "WHERE file_id IN ({marks})"
    )
    rows = list(rows_in(db, sql, packed))
    by_packed = dict(zip(packed, file_ids, strict=True))
    out: dict[str, tuple[int, list[tuple[str, int, int]]]] = {}
    for key, owner, state, size, sha256, blob, count in rows:
        if key in linked or state != STATE_COMPLETE or files.labels.name(db, owner) != tenant:
            continue  # for ``put``, which links it by S3's rules or refuses it
        file_id = by_packed[key]
        first = unpack_page(blob, 0, unpack_hex(sha256))
        whole = len(first) == count  # a paged manifest's entries come after its first page
        out[file_id] = (int(size), page_refs(first) if whole else files.chunks(file_id))
    return out


def _fresh_entries(
    files: StoreFiles, bucket: str, objs: list[NewObject]
) -> tuple[sqlite3.Row | None, list[FreshLink | None]]:
    """The bucket's row, and for each of ``objs`` (all in it) its link when it is fresh,
    else None (a key or file named again is not: ``put`` links it after the first)."""
    try:
        row = load_bucket(files.db, bucket)
    except DfsError:
        return None, [None] * len(objs)  # ``put`` refuses each
    tenant = row["tenant"]
    taken = _keys_with_versions(files.db, bucket, [o.key for o in objs])
    unlinked = _unlinked_files(files, tenant, [o.file_id for o in objs if o.file_id])
    out: list[FreshLink | None] = []
    for obj in objs:
        fresh = obj.key not in taken and obj.owner in ("", tenant)
        size, refs = 0, list[tuple[str, int, int]]()
        if obj.file_id:
            found = unlinked.pop(obj.file_id, None)
            fresh = fresh and found is not None
            size, refs = found or (0, [])
        taken.add(obj.key)
        out.append(FreshLink(dataclasses.replace(obj, size=size), refs) if fresh else None)
    return row, out


def _link_fresh(
    files: StoreFiles, bucket: sqlite3.Row, links: list[FreshLink], now: float
) -> list[ObjectVersion]:
    """Write the fresh ``links`` of ``bucket``; their versions, in order."""
    db, n = files.db, len(links)
    top = db.execute(
        "INSERT INTO ns_sequence VALUES ('version', ?) ON CONFLICT(name) "
        "DO UPDATE SET value = value + excluded.value RETURNING value",
        (n,),
    ).fetchone()[0]
    enabled = bucket["versioning"] == VERSIONING_ENABLED
    rows, current, made = [], [], []
    for i, link in enumerate(links):
        obj, rank = link.obj, -(int(top) - n + 1 + i)
        version_id = new_version_id(rank) if enabled else NULL_VERSION
        version = version_of(obj, version_id, now)
        rows.append(_version_row(version, rank))
        current.append((obj.bucket, obj.key, rank))
        made.append(version)
    marks = ",".join("?" * len(rows[0]))
    db.executemany(f"INSERT INTO ns_versions ({VERSION_COLUMNS}) VALUES ({marks})", rows)
    db.executemany("INSERT INTO ns_current VALUES (?,?,?)", current)
    count_fresh_links(files, bucket["tenant"], bucket["name"], links)
    return made


def _version_row(v: ObjectVersion, rank: int) -> tuple[object, ...]:
    """``v`` as an ``ns_versions`` row (``insert_version``'s columns)."""
    return (
        v.bucket,
        v.key,
        rank,
        pack_version_id(rank, v.version_id),
        pack_file_id(v.file_id),
        v.size,
        v.created_at,
        0,
        stored_etag(v.etag, v.sha256),
        pack_hex(v.sha256),
        v.content_type,
        pairs_json(v.user_metadata),
        pairs_json(v.tags),
        stored_access(v.access),
        names_json(v.shared_with),
        pairs_json(v.headers),
    )
