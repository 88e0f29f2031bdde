"""Many versions removed for good in one request (``POST /objects-remove``): what
``dfs-client prune`` sends, instead of one ``DELETE /objects/...?version=`` per version.

Each entry is ``Namespace.delete``'s removal of one version, with its own answer (the
version removed, None when it is not there, or the error that refused it), so one bad
entry costs only itself. The bucket is read and the caller's write access checked once;
the entries run ``DELETES_AT_ONCE`` keys at a time (the SQLite store's group commit takes
those queued together in one transaction), a key's entries one after another in the
request's order. ``if_latest`` holds as on the single route: the version goes only while
the key's latest entry is that one (checked in the store's atomic write).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dfs.api import access
from dfs.api.bodies import Principal
from dfs.api.namespace_service import DELETES_AT_ONCE, Namespace
from dfs.bounded import gather_by_key
from dfs.errors import DfsError
from dfs.meta.namespace import ObjectVersion


@dataclass(frozen=True, slots=True)
class VersionRemoval:
    """One entry: a key's version to remove, only while the key's latest entry is
    ``if_latest`` when given."""

    key: str
    version: str
    if_latest: str | None = None


Answer = ObjectVersion | None | DfsError


async def remove_versions(
    ns: Namespace, who: Principal, bucket: str, entries: Sequence[VersionRemoval | DfsError]
) -> list[Answer]:
    """Each entry's version removed (an entry that did not parse is its own answer); the
    answers in order. A refusal of the bucket or of the caller refuses all."""
    access.require_write(who, await ns.bucket(bucket))
    out: list[Answer] = [e if isinstance(e, DfsError) else None for e in entries]

    async def one(i: int) -> None:
        e = entries[i]
        if isinstance(e, VersionRemoval):
            try:
                out[i] = await ns.store.delete_object(
                    bucket, e.key, e.version, ns.coord.clock(), if_latest=e.if_latest
                )
            except DfsError as exc:  # this entry's answer, not the request's
                out[i] = exc

    keys = [e.key if isinstance(e, VersionRemoval) else ("", i) for i, e in enumerate(entries)]
    await gather_by_key(one, keys, DELETES_AT_ONCE)
    return out
