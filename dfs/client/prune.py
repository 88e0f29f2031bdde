"""``prune``: forget a versioned bucket's snapshots older than a time (``dfs-client prune``).

A folder uploaded again and again into a versioned bucket is a series of snapshots that
``download --at`` restores; nothing ever removes the old ones, so the bucket only grows.
``PruneMethods.prune(bucket, path, before)`` removes the versions and delete markers of the
keys under ``path`` that no ``--at`` of ``before`` or later reaches, as restic's ``forget
--keep-within`` and borg's ``prune`` forget snapshots; what is current stays (the rules, and
why they hold with skewed clocks and suspended versioning: ``dfs.client.version_times``).

It reads the versions listing a key at a time (memory: a few batches' keys, whatever the
bucket holds) and removes the versions with ``POST /objects-remove``, about
``REMOVALS_PER_REQUEST`` a request, reporting each as it goes; then each batch's delete
markers, ``MARKERS_AT_ONCE`` at a time. Removing a version is safe
to send again (the API answers a version that is gone already with none removed, and such
a version is not counted). A key's delete marker goes
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

from dfs.bounded import gather_bounded
from dfs.client.namespace import NamespaceMethods
from dfs.client.version_times import Entry, KeyPrune, by_key, key_prune, marker_removable
from dfs.errors import Conflict, DfsError, from_body

REMOVALS_PER_REQUEST = 500
"""About the versions (and markers) a prune's batch takes, a key's all in one batch (so a
request may hold a key's thousand; ``remove_versions`` splits at 1,000): one
``POST /objects-remove`` (the API removes them 64 keys at once) instead of a request each,
which had cost the API and the client more than the removals."""
REQUESTS_IN_FLIGHT = 2
"""Removal requests of one prune at once: one answered while the next runs."""
MARKERS_AT_ONCE = 16
"""Delete markers of one batch checked and removed at once (two requests each)."""


def _work(plan: KeyPrune) -> int:
    """What a key's plan adds to a batch: its versions, and its marker's requests."""
    return len(plan.replaced) + (plan.marker is not None)


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
        plans: asyncio.Queue[KeyPrune | None] = asyncio.Queue(REMOVALS_PER_REQUEST)

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
            for _ in range(REQUESTS_IN_FLIGHT):
                await plans.put(None)

        async def worker() -> None:
            last = False
            while not last and (plan := await plans.get()) is not None:
                batch, count = [plan], _work(plan)
                while count < REMOVALS_PER_REQUEST and not plans.empty():
                    more = plans.get_nowait()
                    if more is None:  # this worker's end: after the batch it holds
                        last = True
                        break
                    batch.append(more)
                    count += _work(more)
                await self._prune_batch(bucket, batch, before, report, tell)

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(lister())
                for _ in range(0 if dry_run else REQUESTS_IN_FLIGHT):
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

    async def _prune_batch(
        self, bucket: str, batch: list[KeyPrune], before: float, report: PruneReport, tell: Removed
    ) -> None:
        """The batch's replaced versions removed in one request, then each of its markers
        if a fresh listing of the key still allows it. A refusal stops the prune, once the
        versions removed beside it are reported."""
        gone = [o for plan in batch for o in plan.replaced]
        asked = [{"key": o["key"], "version": o["version_id"]} for o in gone]
        answers = await self.remove_versions(bucket, asked) if asked else []
        refused: DfsError | None = None
        for o, answer in zip(gone, answers, strict=True):
            if "error" in answer:
                refused = refused or from_body(0, answer)
            elif answer.get("version") is not None:  # None: gone already (another prune)
                report.add(o)
                tell(o)
        if refused is not None:
            raise refused

        async def marker(plan: KeyPrune) -> None:
            await self._prune_marker(bucket, plan, before, report, tell)

        # a fresh listing and a conditional removal each: many at once
        await gather_bounded(marker, [p for p in batch if p.marker], MARKERS_AT_ONCE)

    async def _prune_marker(
        self, bucket: str, plan: KeyPrune, before: float, report: PruneReport, tell: Removed
    ) -> None:
        """``plan``'s marker removed if a fresh listing of the key still allows it, on the
        condition that the key's latest entry is still the one that listing saw."""
        assert plan.marker is not None
        fresh = await self.key_versions(bucket, plan.key)
        kept = True
        if marker_removable(fresh, plan.marker, before):
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
