"""``prune``: forget a versioned bucket's snapshots older than a time (``dfs-client prune``).

A folder uploaded again and again into a versioned bucket is a series of snapshots that
``download --at`` restores; nothing ever removes the old ones, so the bucket only grows.
``PruneMethods.prune(bucket, path, before)`` removes the versions and delete markers of the
keys under ``path`` that no ``--at`` of ``before`` or later reaches, as restic's ``forget
--keep-within`` and borg's ``prune`` forget snapshots; what is current stays (the rules, and
why they hold with skewed clocks and suspended versioning: ``dfs.client.version_times``).

It reads the versions listing a key at a time (memory: one key's versions, whatever the
bucket holds) and removes each key's entries with the existing ``DELETE
/objects/{bucket}/{key}?version=``, up to ``PRUNE_AT_ONCE`` keys at once, reporting each as
it goes. Removing one version is safe to send again (the API answers a version that is gone
already with none removed, and such a version is not counted). A key's delete marker goes
last, and only when a fresh listing of its key still allows it (``marker_removable``): a
prune stopped anywhere, a removal that did not happen, a write meanwhile or a listing that
gave a key's versions apart never makes an older version current, and running the prune
again finishes the work. The marker's removal carries the latest entry the fresh listing
saw (``if_latest``): a write landing between the two keeps the marker. The chunks of the
files no version links any more are freed by the API's garbage collection, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from dfs.client.namespace import NamespaceMethods
from dfs.client.version_times import Entry, KeyPrune, by_key, key_prune, marker_removable
from dfs.errors import Conflict, DfsError

PRUNE_AT_ONCE = 16
"""Keys whose versions are being removed at once (each key's one after another)."""

Removed = Callable[[Entry], None]


@dataclass
class PruneReport:
    """What a prune removed (``dry_run``: would remove) and kept, in counts; each entry
    itself goes to the caller's ``on_removed`` as it goes."""

    dry_run: bool
    versions: int = 0
    markers: int = 0
    bytes: int = 0
    kept: int = 0

    def add(self, o: Entry) -> None:
        if o["is_delete_marker"]:
            self.markers += 1
        else:
            self.versions += 1
            self.bytes += int(o["size"])


class PruneMethods(NamespaceMethods):
    """``prune`` of ``Client``."""

    async def prune(
        self,
        bucket: str,
        path: str,
        before: float,
        *,
        dry_run: bool = False,
        on_removed: Removed | None = None,
    ) -> PruneReport:
        """Remove the versions and delete markers of the keys under ``path`` (a folder when
        empty or ending with "/", else that key and the folder ``path/``) that no ``--at``
        of ``before`` (Unix seconds, the API's clock) or later reaches; ``dry_run``: only
        say which. ``on_removed`` is called with each entry removed, as it goes."""
        report = PruneReport(dry_run)
        tell = on_removed or (lambda o: None)
        plans: asyncio.Queue[KeyPrune | None] = asyncio.Queue(PRUNE_AT_ONCE * 4)

        async def lister() -> None:
            async for versions in by_key(self._entries(bucket, path)):
                plan = key_prune(versions, before)
                report.kept += plan.kept
                if dry_run:
                    for o in plan.replaced + ([plan.marker] if plan.marker else []):
                        report.add(o)
                        tell(o)
                elif plan.replaced or plan.marker:
                    await plans.put(plan)
            for _ in range(PRUNE_AT_ONCE):
                await plans.put(None)

        async def worker() -> None:
            while (plan := await plans.get()) is not None:
                await self._prune_key(bucket, plan, before, report, tell)

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(lister())
                for _ in range(0 if dry_run else PRUNE_AT_ONCE):
                    tg.create_task(worker())
        except BaseExceptionGroup as group:
            # callers (and the CLI's error mapping) expect the error itself, not a group
            errors = group.exceptions
            raise next((e for e in errors if isinstance(e, DfsError)), errors[0]) from None
        return report

    async def _entries(self, bucket: str, path: str) -> AsyncIterator[Entry]:
        """The versions listing of ``path``: a folder's, or one key's and its folder's."""
        folder = path + "/"
        async for o in self.list_all(bucket, path, delimiter="", versions=True):
            if not path or path.endswith("/") or o["key"] == path or o["key"].startswith(folder):
                yield o

    async def _prune_key(
        self, bucket: str, plan: KeyPrune, before: float, report: PruneReport, tell: Removed
    ) -> None:
        """``plan``'s versions removed one after another, then its marker if a fresh
        listing of the key still allows it."""
        for o in plan.replaced:
            await self._remove_version(bucket, o, report, tell)
        if plan.marker is None:
            return
        fresh = []
        async for o in self.list_all(bucket, plan.key, delimiter="", versions=True):
            if o["key"] != plan.key:
                break  # a longer key: this one's entries are done
            fresh.append(o)
        kept = True
        if marker_removable(fresh, plan.marker, before):
            # only while the key's latest entry is still the one the fresh listing saw
            with contextlib.suppress(Conflict):
                latest = fresh[0]["version_id"]
                await self._remove_version(bucket, plan.marker, report, tell, latest)
                kept = False  # removed now, or by another prune meanwhile
        report.kept += kept

    async def _remove_version(
        self, bucket: str, o: Entry, report: PruneReport, tell: Removed, if_latest: str = ""
    ) -> None:
        """``o`` removed, and counted unless it was gone already (another prune)."""
        vid = o["version_id"]
        answer = await self.remove(bucket, o["key"], version=vid, if_latest=if_latest or None)
        if answer.get("version") is not None:
            report.add(o)
            tell(o)
