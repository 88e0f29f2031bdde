"""The SQLite namespace's version changes (put, delete, restore, copy, update): S3's rules
for versioning states, ``null`` versions and delete markers, each run by the store inside
one ``BEGIN IMMEDIATE`` transaction, so every check-then-act holds the write lock from its
first read and the links and usage counters (``dfs.meta.sqlite_namespace_usage``) change in
the same commit as the versions.

Every change of a key ends with ``refresh_current``: the latest version (least rank) decides
whether the key is listed (``ns_current``) and the ``objects`` counters follow.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence

from dfs.errors import BucketNotFound, KeyNotFound, SourceChanged
from dfs.meta.namespace import (
    NULL_VERSION,
    VERSIONING_ENABLED,
    VERSIONING_SUSPENDED,
    NewObject,
    ObjectVersion,
    PutResult,
    check_condition,
    check_latest,
    check_owner,
    holds_already,
)
from dfs.meta.sqlite_codec import pack_file_id, pack_hex
from dfs.meta.sqlite_namespace_files import StoreFiles
from dfs.meta.sqlite_namespace_schema import (
    VERSION_COLUMNS,
    etag_of,
    names_json,
    new_version_id,
    pack_version_id,
    pairs_json,
    parse_version_id,
    row_file_id,
    row_sha256,
    row_version_id,
    stored_access,
    stored_etag,
    version_record,
)
from dfs.meta.sqlite_namespace_usage import (
    count_current,
    count_version,
    link_file,
    unlink_file,
)


def load_bucket(db: sqlite3.Connection, name: str) -> sqlite3.Row:
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM ns_buckets WHERE name=?", (name,)
    ).fetchone()
    if row is None:
        raise BucketNotFound(f"no bucket {name}")
    return row


def _next_rank(db: sqlite3.Connection) -> int:
    row = db.execute(
        "INSERT INTO ns_sequence VALUES ('version', 1) ON CONFLICT(name) "
        "DO UPDATE SET value = value + 1 RETURNING value"
    ).fetchone()
    return -int(row[0])


def find_version(
    db: sqlite3.Connection, bucket: str, key: str, version_id: str | None
) -> sqlite3.Row | None:
    """One version by id, or the latest (marker or not) when ``version_id`` is None. An id
    that spells a rank is one primary-key read; ``null`` (at most one per key) is found
    among the key's versions."""
    parsed = None if version_id is None else parse_version_id(version_id)
    if version_id is None:
        sql = "SELECT * FROM ns_versions WHERE bucket=? AND key=? ORDER BY rank LIMIT 1"
        args: tuple[object, ...] = (bucket, key)
    elif parsed is not None:
        sql = "SELECT * FROM ns_versions WHERE bucket=? AND key=? AND rank=? AND version_id=?"
        args = (bucket, key, *parsed)
    else:
        sql = "SELECT * FROM ns_versions WHERE bucket=? AND key=? AND version_id=?"
        args = (bucket, key, version_id)
    row: sqlite3.Row | None = db.execute(sql, args).fetchone()
    return row


def is_latest(db: sqlite3.Connection, row: sqlite3.Row) -> bool:
    first = db.execute(
        "SELECT MIN(rank) FROM ns_versions WHERE bucket=? AND key=?", (row["bucket"], row["key"])
    ).fetchone()
    return bool(first[0] == row["rank"])


def readable_version(
    db: sqlite3.Connection, bucket: str, key: str, version_id: str | None
) -> sqlite3.Row:
    """A version to read or copy: KeyNotFound when missing, or when the latest is a marker."""
    load_bucket(db, bucket)
    row = find_version(db, bucket, key, version_id)
    if row is None or (version_id is None and row["is_marker"]):
        raise KeyNotFound(f"no key {key!r} in bucket {bucket}")
    return row


def refresh_current(
    db: sqlite3.Connection, tenant: str, bucket: str, key: str, *, count: bool = True
) -> int:
    """``ns_current`` of the key as its latest version says; the change of its current
    objects (1, 0 or -1), counted in usage unless ``count`` is False (the caller counts it
    with its own change: one usage write instead of two)."""
    latest = find_version(db, bucket, key, None)
    was = db.execute("SELECT 1 FROM ns_current WHERE bucket=? AND key=?", (bucket, key)).fetchone()
    delta = 0
    if latest is not None and not latest["is_marker"]:
        db.execute(
            "INSERT OR REPLACE INTO ns_current VALUES (?,?,?)", (bucket, key, latest["rank"])
        )
        delta = 0 if was else 1
    elif was:
        db.execute("DELETE FROM ns_current WHERE bucket=? AND key=?", (bucket, key))
        delta = -1
    if count:
        count_current(db, tenant, bucket, key, delta)
    return delta


def _remove_version(files: StoreFiles, tenant: str, row: sqlite3.Row, now: float) -> str | None:
    """Delete one version row; the file it released, if that was its last link."""
    db = files.db
    db.execute(
        "DELETE FROM ns_versions WHERE bucket=? AND key=? AND rank=?",
        (row["bucket"], row["key"], row["rank"]),
    )
    count_version(
        files,
        tenant,
        row["bucket"],
        row["key"],
        file_id=row_file_id(row),
        size=row["size"],
        is_marker=bool(row["is_marker"]),
        sign=-1,
    )
    return row_file_id(row) if unlink_file(files, row_file_id(row), now) else None


def insert_version(
    files: StoreFiles, bucket: sqlite3.Row, obj: NewObject, now: float, *, marker: bool = False
) -> PutResult:
    """Make ``obj`` (its file checked by the caller) the key's latest version, under the
    bucket's versioning state: a new version id when enabled, else replace the null one."""
    db = files.db
    tenant, key = bucket["tenant"], obj.key
    link_file(db, obj.file_id)  # before the null version goes: it may link the same file
    released = None
    if bucket["versioning"] == VERSIONING_ENABLED:
        rank = _next_rank(db)
        version_id = new_version_id(rank)
    else:
        old = find_version(db, obj.bucket, key, NULL_VERSION)
        if old is not None:
            released = _remove_version(files, tenant, old, now)
        rank, version_id = _next_rank(db), NULL_VERSION
    db.execute(
        f"INSERT INTO ns_versions ({VERSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            obj.bucket,
            key,
            rank,
            pack_version_id(rank, version_id),
            pack_file_id(obj.file_id),
            obj.size,
            now,
            int(marker),
            stored_etag(obj.etag, obj.sha256),
            pack_hex(obj.sha256),
            obj.content_type,
            pairs_json(tuple(sorted(obj.user_metadata))),
            pairs_json(tuple(sorted(obj.tags))),
            stored_access(obj.access),
            names_json(obj.shared_with),
            pairs_json(tuple(sorted(obj.headers))),
        ),
    )
    current = refresh_current(db, tenant, obj.bucket, key, count=False)
    count_version(
        files,
        tenant,
        obj.bucket,
        key,
        file_id=obj.file_id,
        size=obj.size,
        is_marker=marker,
        sign=1,
        current=current,
    )
    row = find_version(db, obj.bucket, key, version_id)
    assert row is not None
    return PutResult(version_record(row, True), released)


def _check(db: sqlite3.Connection, obj: NewObject, if_absent: bool, if_match: str | None) -> None:
    """A write's conditions against the key's latest version, read in its transaction."""
    if if_absent or if_match is not None:
        latest = find_version(db, obj.bucket, obj.key, None)
        current = None if latest is None or latest["is_marker"] else etag_of(latest)
        check_condition(obj, current, if_absent, if_match)


def put(
    files: StoreFiles,
    obj: NewObject,
    now: float,
    if_absent: bool = False,
    if_match: str | None = None,
    unless_current: bool = False,
) -> PutResult:
    """``put_object``; its conditions (``unless_current``, ``if_absent``, ``if_match``) are
    read in the write transaction, so no other write can slip in between."""
    db = files.db
    bucket = load_bucket(db, obj.bucket)
    check_owner(obj, bucket["tenant"])
    if unless_current:
        row = find_version(db, obj.bucket, obj.key, None)
        latest = None if row is None else version_record(row, True)
        if latest is not None and holds_already(obj, latest):
            return PutResult(latest, made=False)
    _check(db, obj, if_absent, if_match)
    size = files.linkable_size(obj.file_id, bucket["tenant"]) if obj.file_id else 0
    return insert_version(files, bucket, dataclasses.replace(obj, size=size), now)


def delete(
    files: StoreFiles,
    bucket_name: str,
    key: str,
    version_id: str | None,
    now: float,
    unless_deleted: bool = False,
    conditions: tuple[str | None, tuple[str, float] | None] = (None, None),
) -> ObjectVersion | None:
    """``delete_object``; ``conditions``: its ``if_latest`` and ``if_written``."""
    db = files.db
    bucket = load_bucket(db, bucket_name)
    tenant = bucket["tenant"]
    if conditions != (None, None):
        row = find_version(db, bucket_name, key, None)
        check_latest(key, None if row is None else version_record(row, True), *conditions)
    if version_id is None and bucket["versioning"] in (VERSIONING_ENABLED, VERSIONING_SUSPENDED):
        if unless_deleted:
            latest = find_version(db, bucket_name, key, None)
            if latest is None or latest["is_marker"]:  # nothing current: no marker
                return None if latest is None else version_record(latest, True)
        return insert_version(
            files, bucket, NewObject(bucket_name, key, "", 0), now, marker=True
        ).version
    row = find_version(db, bucket_name, key, NULL_VERSION if version_id is None else version_id)
    if row is None:
        return None  # S3: deleting what is not there succeeds
    gone = version_record(row, is_latest(db, row))
    _remove_version(files, tenant, row, now)
    refresh_current(db, tenant, bucket_name, key)
    return gone


def restore(
    files: StoreFiles, bucket_name: str, key: str, version_id: str, now: float
) -> PutResult:
    db = files.db
    row = readable_version(db, bucket_name, key, version_id)
    if row["is_marker"]:
        raise KeyNotFound(f"version {version_id} of {key!r} is a delete marker")
    old = version_record(row, False)
    again = NewObject(
        bucket_name,
        key,
        old.file_id,
        old.size,
        old.etag,
        old.sha256,
        old.content_type,
        old.user_metadata,
        old.tags,
        old.access,
        old.shared_with,
        old.headers,
    )
    return insert_version(files, load_bucket(db, bucket_name), again, now)


def copy(
    files: StoreFiles,
    src: tuple[str, str, str | None],
    dst: NewObject,
    now: float,
    conditions: tuple[bool, str | None] = (False, None),
    expect_file: str | None = None,
) -> PutResult:
    """``copy_object``; ``conditions``: its ``if_absent`` and ``if_match``."""
    db = files.db
    row = readable_version(db, *src)
    if row["is_marker"]:
        raise KeyNotFound(f"the source of the copy, {src[1]!r}, is a delete marker")
    if expect_file is not None and row_file_id(row) != expect_file:
        raise SourceChanged(f"{src[1]!r} was written while it was copied")
    _check(db, dst, *conditions)
    source_tenant = load_bucket(db, src[0])["tenant"]
    bucket = load_bucket(db, dst.bucket)
    check_owner(dst, bucket["tenant"])
    file_id = row_file_id(row)
    if file_id and bucket["tenant"] != source_tenant:
        file_id = files.copy(file_id, bucket["tenant"], dst.key, now)
    fields = dataclasses.replace(
        dst, file_id=file_id, size=row["size"], etag=etag_of(row), sha256=row_sha256(row)
    )
    return insert_version(files, bucket, fields, now)


def update(
    db: sqlite3.Connection,
    target: tuple[str, str, str | None],
    tags: Sequence[tuple[str, str]] | None,
    access: str | None,
    shared_with: Sequence[str] | None,
) -> ObjectVersion:
    row = readable_version(db, *target)
    if row["is_marker"]:
        raise KeyNotFound(f"version {row_version_id(row)} of {target[1]!r} is a delete marker")
    changes: dict[str, str] = {}
    if tags is not None:
        changes["tags"] = pairs_json(tuple(sorted(tags)))
    if access is not None:
        changes["access"] = stored_access(access)
    if shared_with is not None:
        changes["shared_with"] = names_json(shared_with)
    for column, value in changes.items():  # column names are the three above, not input
        db.execute(
            f"UPDATE ns_versions SET {column}=? WHERE bucket=? AND key=? AND rank=?",
            (value, row["bucket"], row["key"], row["rank"]),
        )
    fresh = find_version(db, row["bucket"], row["key"], row_version_id(row))
    assert fresh is not None
    return version_record(fresh, is_latest(db, fresh))
