"""Many keys linked in one request (``POST /objects-link``): what ``dfs-client`` sends after
uploading a folder into a bucket, instead of one ``PUT /objects`` per file.

Each entry is ``Namespace.link``'s, with its own checks and its own answer (a version, or
the error that refused it: a bad key or field, a key named twice, a file not the caller's),
so one bad entry costs only itself. The entries run at once,
up to ``LINKS_AT_ONCE``: the SQLite store then commits them in groups, one fsync per group
(``dfs.meta.sqlite_group``), and DynamoDB writes their keys in parallel. A key named again
in one request is refused for that entry, so no two entries race for one key and the order
they land in does not matter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from dfs.api import access
from dfs.api.bodies import Principal
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_service import Namespace
from dfs.errors import DfsError, InvalidRequest, Unavailable
from dfs.meta.namespace import PutResult

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
    access checked) once: a refusal there refuses all."""
    b = await ns.bucket(bucket)
    access.require_write(who, b)
    # the caller's files read in one query, not one read per entry (a missing or foreign
    # one is read again by ``link``, which refuses it; the store's write checks them all)
    ids = [e.file_id for e in entries if isinstance(e, LinkEntry) and e.file_id]
    try:
        files = await ns.coord.meta.get_files(ids, who.tenant) if ids else {}
    except DfsError:  # a shortcut only: each entry then reads its own file, as it would
        files = {}
    slots = asyncio.Semaphore(LINKS_AT_ONCE)

    async def one(e: LinkEntry | DfsError) -> PutResult | DfsError:
        if isinstance(e, DfsError):  # refused as it was parsed
            return e
        async with slots:
            try:
                return await ns.link(
                    who,
                    bucket,
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
                log.exception("link of %s/%s failed", bucket, e.key)
                return Unavailable(f"link failed: {type(exc).__name__}")

    return list(await asyncio.gather(*(one(e) for e in _repeats_refused(entries))))


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
