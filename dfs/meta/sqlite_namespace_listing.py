"""Listings of the SQLite namespace: objects, versions and search, in pages.

``list_objects`` walks ``ns_current`` (latest non-marker versions only) and
``list_versions`` walks ``ns_versions`` (key, then newest first), both in index order from
where the token says. A key that holds the delimiter after the prefix becomes a common
prefix; the walk then seeks past every key under that prefix (``prefix_end``) instead of
reading them, so a page costs one index seek per common prefix plus one read per object,
however many keys a folder holds. Each page reads one entry beyond ``limit`` so that
``next_token`` is None exactly on the last page.

``search_objects`` is a bounded scan: it reads at most ``SEARCH_SCAN`` current keys per
page (from the prefix, in key order) and filters them, so a page may hold fewer matches than
``limit`` (even none) and still have a ``next_token``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dfs.meta.namespace import ObjectListing, ObjectVersion, SearchQuery
from dfs.meta.sqlite_namespace_schema import decode_token, encode_token, version_record
from dfs.namespace_rules import prefix_end

SEARCH_SCAN = 5000  # current keys read per search page at most
_BATCH = 256  # rows read per index seek


@dataclass(slots=True)
class _Walk:
    """Where a listing stands: the next row is > (or >=) ``after`` and < ``end``."""

    after: tuple[Any, ...] | None
    inclusive: bool
    end: str | None
    done: bool = False


def _start(prefix: str, token: str | None) -> _Walk:
    state = decode_token(token)
    end = prefix_end(prefix) if prefix else None
    if "p" in state:  # resume after a common prefix: skip every key under it
        skip = prefix_end(str(state["p"]))
        if skip is not None and skip < prefix:  # before the prefix: from the prefix on
            return _Walk((prefix,), True, end)
        return _Walk((skip,), True, end, done=skip is None)
    if "k" in state:
        after = (str(state["k"]),) if "r" not in state else (str(state["k"]), int(state["r"]))
        if str(state["k"]) < prefix:  # a start_after before the prefix: from the prefix on
            return _Walk((prefix,), True, end)
        return _Walk(after, False, end)
    return _Walk((prefix,), True, end)


def start_after_token(start_after: str) -> str | None:
    """The token that resumes a listing after the key ``start_after`` (None: from the start)."""
    return encode_token({"k": start_after}) if start_after else None


def _rows(
    db: sqlite3.Connection, sql: str, alias: str, bucket: str, walk: _Walk
) -> Iterator[sqlite3.Row]:
    """Rows from the walk's position in key order (``sql`` has {where} and ends by LIMIT ?);
    a consumer that moves ``walk.after`` (past a common prefix) makes it seek again."""
    while not walk.done:
        cond, args = [f"{alias}.bucket=?"], [bucket]
        if walk.after is not None:
            pair = len(walk.after) == 2
            cols = f"({alias}.key, {alias}.rank)" if pair else f"{alias}.key"
            cond.append(f"{cols} {'>=' if walk.inclusive else '>'} {'(?, ?)' if pair else '?'}")
            args += walk.after
        if walk.end is not None:
            cond.append(f"{alias}.key < ?")
            args.append(walk.end)
        rows = db.execute(sql.format(where=" AND ".join(cond)), (*args, _BATCH)).fetchall()
        if not rows:
            return
        moved = walk.after
        for row in rows:
            yield row
            if walk.after is not moved or walk.done:
                break
        else:
            last = rows[-1]
            walk.after = (last["key"], last["rank"]) if alias == "v" else (last["key"],)
            walk.inclusive = False


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return None if at < 0 else key[: at + len(delimiter)]


def _page(
    db: sqlite3.Connection,
    sql: str,
    alias: str,
    bucket: str,
    *,
    prefix: str,
    delimiter: str,
    token: str | None,
    limit: int,
) -> ObjectListing:
    walk = _start(prefix, token)
    out: list[tuple[str, sqlite3.Row | None]] = []  # (common prefix, None) or ("", row)
    for row in _rows(db, sql, alias, bucket, walk):
        cp = _common_prefix(row["key"], prefix, delimiter)
        if cp is None:
            out.append(("", row))
        else:
            out.append((cp, None))
            skip = prefix_end(cp)
            walk.after, walk.inclusive, walk.done = (skip,), True, skip is None
        if len(out) > limit:
            break
    token_out = None
    if len(out) > limit:
        out = out[:limit]
        cp, last = out[-1]
        state: dict[str, Any] = {"p": cp} if last is None else {"k": last["key"]}
        if last is not None and alias == "v":
            state["r"] = last["rank"]
        token_out = encode_token(state)
    objects = [version_record(r, bool(r["latest"])) for cp, r in out if r is not None]
    prefixes = [cp for cp, r in out if r is None]
    return ObjectListing(objects, prefixes, token_out)


_OBJECTS_SQL = (
    "SELECT v.*, 1 AS latest FROM ns_current c JOIN ns_versions v "
    "ON v.bucket = c.bucket AND v.key = c.key AND v.rank = c.rank "
    "WHERE {where} ORDER BY c.key LIMIT ?"
)
_VERSIONS_SQL = (
    "SELECT v.*, v.rank = (SELECT MIN(rank) FROM ns_versions m "
    "WHERE m.bucket = v.bucket AND m.key = v.key) AS latest "
    "FROM ns_versions v WHERE {where} ORDER BY key, rank LIMIT ?"
)


def list_objects(
    db: sqlite3.Connection, bucket: str, prefix: str, delimiter: str, token: str | None, limit: int
) -> ObjectListing:
    return _page(
        db, _OBJECTS_SQL, "c", bucket, prefix=prefix, delimiter=delimiter, token=token, limit=limit
    )


def list_versions(
    db: sqlite3.Connection, bucket: str, prefix: str, delimiter: str, token: str | None, limit: int
) -> ObjectListing:
    return _page(
        db, _VERSIONS_SQL, "v", bucket, prefix=prefix, delimiter=delimiter, token=token, limit=limit
    )


def matches(v: ObjectVersion, q: SearchQuery) -> bool:
    """Every filter of the query holds for the version."""
    tags = dict(v.tags)
    checks = (
        not q.contains or q.contains in v.key,
        q.tag is None or (q.tag[0] in tags and q.tag[1] in (None, tags[q.tag[0]])),
        not q.content_type
        or (
            v.content_type.startswith(q.content_type)
            if q.content_type.endswith("/")
            else v.content_type == q.content_type
        ),
        q.min_size is None or v.size >= q.min_size,
        q.max_size is None or v.size <= q.max_size,
        q.modified_after is None or v.created_at >= q.modified_after,
        q.modified_before is None or v.created_at < q.modified_before,
    )
    return all(checks)


def search(
    db: sqlite3.Connection, bucket: str, q: SearchQuery, token: str | None, limit: int
) -> ObjectListing:
    walk = _start(q.prefix, token)
    found: list[ObjectVersion] = []
    scanned, last_key = 0, None
    for row in _rows(db, _OBJECTS_SQL, "c", bucket, walk):
        v = version_record(row, True)
        if matches(v, q):
            if len(found) == limit:  # one match beyond the page: there is a next page
                return ObjectListing(found, [], encode_token({"k": found[-1].key}))
            found.append(v)
        scanned, last_key = scanned + 1, v.key
        if scanned >= SEARCH_SCAN:
            return ObjectListing(found, [], encode_token({"k": last_key}))
    return ObjectListing(found, [], None)
