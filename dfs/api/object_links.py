"""Many keys linked in one request (``POST /objects-link``): what ``dfs-client`` sends as
it uploads a folder into a bucket, instead of one ``PUT /objects`` per file.

Each entry is ``Namespace.link``'s, with its own checks and its own answer (a version, or
the error that refused it: a bad key or field, a key named twice, a file not the caller's,
an access other than private asked by a grantee: ``access.require_may_share``),
so one bad entry costs only itself. The entries that link the bucket owner's own complete
files (a folder upload's, nearly all) go to the store in one ``put_objects``: SQLite links
the fresh ones in one pass of a few statements and the rest one by one in the same
transaction (``dfs.meta.sqlite_namespace_batch``); DynamoDB writes their keys in parallel.
The others (a grantee's file, which the link clones into the owner's; a file not found)
run through ``Namespace.link``, up to ``LINKS_AT_ONCE`` at once. A key named again in one
request is refused for that entry, so no two entries race for one key and the order they
land in does not matter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from dfs.api import access
from dfs.api.bodies import Principal
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_records import fresh_file, new_object
from dfs.api.namespace_service import Namespace
from dfs.bounded import gather_bounded
from dfs.errors import DfsError, InvalidRequest, Unavailable
from dfs.meta.base import FileRecord
from dfs.meta.namespace import BucketRecord, NewObject, PutResult

log = logging.getLogger("dfs.api")

LINKS_AT_ONCE = 64
"""Entries of one request linked concurrently (the SQLite store's group size)."""


@dataclass(frozen=True, slots=True)
class LinkEntry:
    key: str
    file_id: str  # "" for an empty object
    fields: ObjectFields


async def link_many(
    ns: Namespace,
    who: Principal,
    bucket: str,
    entries: Sequence[LinkEntry | DfsError],
    *,
    unless_current: bool,
) -> list[PutResult | DfsError]:
    """Each entry linked as ``Namespace.link`` links it (an entry that did not parse is
    its own answer); the answers in order. The bucket is read (and the caller's write
    access checked) once: a refusal there refuses all. The entries linking the bucket
    owner's own complete files (what a folder upload sends) go to the store in one
    ``put_objects``; the others (a grantee's file, which the link clones, or a file the
    read did not find) each through ``Namespace.link``."""
    b = await ns.bucket(bucket)
    access.require_write(who, b)
    entries = _repeats_refused(entries)
    # the caller's files read in one query, not one read per entry (a missing or foreign
    # one is read again by ``link``, which refuses it; the store's write checks them all)
    ids = [e.file_id for e in entries if isinstance(e, LinkEntry) and e.file_id]
    try:
        files = await ns.coord.meta.get_files(ids, who.tenant) if ids else {}
    except DfsError:  # a shortcut only: each entry then reads its own file, as it would
        files = {}
    out: list[PutResult | DfsError | None] = [None] * len(entries)
    own: list[tuple[int, NewObject]] = []
    others: list[tuple[int, LinkEntry]] = []
    for i, e in enumerate(entries):
        if isinstance(e, DfsError):  # refused as it was parsed
            out[i] = e
            continue
        rec = fresh_file(who, e.file_id, files.get(e.file_id)) if e.file_id else None
        if e.file_id and (rec is None or rec.tenant != b.tenant):
            others.append((i, e))  # ``link`` checks the entry's access itself
            continue
        try:  # what ``link`` checks, for the entries the batch links without it
            access.require_may_share(who, b, e.fields.access)
        except DfsError as exc:
            out[i] = exc
            continue
        size, sha256 = (rec.size, rec.sha256) if rec is not None else (0, "")
        own.append((i, new_object(b, e.key, e.file_id, size, sha256, e.fields, None)))
    linked = await asyncio.gather(
        _link_own(ns, [n for _, n in own], unless_current),
        _link_each(ns, who, b, [e for _, e in others], files, unless_current),
    )
    for i, d in zip(
        [i for i, _ in own] + [i for i, _ in others], linked[0] + linked[1], strict=True
    ):
        out[i] = d
    return [d for d in out if d is not None]


async def _link_own(
    ns: Namespace, objs: list[NewObject], unless_current: bool
) -> list[PutResult | DfsError]:
    """``objs`` linked by one ``put_objects``; a failure of the whole write (the store
    unreachable) is each one's answer."""
    if not objs:
        return []
    try:
        return await ns.store.put_objects(objs, ns.coord.clock(), unless_current=unless_current)
    except DfsError as exc:
        return [exc] * len(objs)
    except Exception as exc:  # a bug: these entries' answer, not the request's
        log.exception("links of %d keys of %s failed", len(objs), objs[0].bucket)
        return [Unavailable(f"link failed: {type(exc).__name__}")] * len(objs)


async def _link_each(
    ns: Namespace,
    who: Principal,
    b: BucketRecord,
    entries: list[LinkEntry],
    files: dict[str, FileRecord],
    unless_current: bool,
) -> list[PutResult | DfsError]:
    """``Namespace.link`` of each entry, ``LINKS_AT_ONCE`` at a time; each one's answer."""

    async def one(e: LinkEntry) -> PutResult | DfsError:
        try:
            return await ns.link(
                who,
                b.name,
                e.key,
                e.file_id,
                e.fields,
                unless_current=unless_current,
                read=b,
                written=files.get(e.file_id),
            )
        except DfsError as exc:
            return exc
        except Exception as exc:  # a bug: this entry's answer, not the others'
            log.exception("link of %s/%s failed", b.name, e.key)
            return Unavailable(f"link failed: {type(exc).__name__}")

    return await gather_bounded(one, entries, LINKS_AT_ONCE)


def _repeats_refused(entries: Sequence[LinkEntry | DfsError]) -> list[LinkEntry | DfsError]:
    """``entries`` with every key after its first naming refused."""
    seen: set[str] = set()
    out: list[LinkEntry | DfsError] = []
    for e in entries:
        if isinstance(e, LinkEntry) and e.key in seen:
            e = InvalidRequest(f"key {e.key!r} appears twice in one request")
        elif isinstance(e, LinkEntry):
            seen.add(e.key)
        out.append(e)
    return out
