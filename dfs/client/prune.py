"""``prune``: forget a versioned bucket's snapshots older than a time (``dfs-client prune``).

A folder uploaded again and again into a versioned bucket is a series of snapshots that
``download --at`` restores; nothing ever removes the old ones, so the bucket only grows.
``PruneMethods.prune(bucket, prefix, before)`` removes every version and delete marker of the
keys under ``prefix`` that no ``--at`` of ``before`` or later reaches (the rule is
``dfs.client.version_times``'s), as restic's ``forget --keep-within`` and borg's ``prune``
forget snapshots. What is current stays, and so does whatever was current at ``before``.

It reads the versions listing once, a key at a time (memory bounded by one key's
versions), and removes each key's versions with the existing ``DELETE
/objects/{bucket}/{key}?version=``, up to ``PRUNE_AT_ONCE`` keys at once. Removing one
version is safe to send again; a version already gone (another prune, a lost answer) counts
as removed. A key's delete marker goes last, and only when a fresh listing of its key shows
nothing under it any more: a prune stopped anywhere, a removal that did not happen or a
listing that gave a key's versions apart never makes an older version current again, and
running the prune again finishes the work. The chunks of the files no version links any
more are freed by the API's garbage collection, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from dfs.client.namespace import NamespaceMethods
from dfs.client.version_times import Entry, KeyPrune, by_key, key_prune
from dfs.errors import DfsError, KeyNotFound

PRUNE_AT_ONCE = 16
"""Keys whose versions are being removed at once (each key's one after another)."""


@dataclass
class PruneReport:
    """What a prune removed (``dry_run``: would remove), in the order it was done, and how
    many versions it kept."""

    dry_run: bool
    removed: list[Entry] = field(default_factory=list)
    kept: int = 0

    @property
    def markers(self) -> int:
        return sum(1 for o in self.removed if o["is_delete_marker"])

    @property
    def bytes(self) -> int:
        return sum(int(o["size"]) for o in self.removed if not o["is_delete_marker"])


class PruneMethods(NamespaceMethods):
    """``prune`` of ``Client``."""

    async def prune(
        self, bucket: str, prefix: str, before: float, *, dry_run: bool = False
    ) -> PruneReport:
        """Remove the versions and delete markers of the keys under ``prefix`` that a newer
        version had replaced at ``before`` (Unix seconds, the API's clock), and a delete
        marker current then once its key has nothing older; ``dry_run``: only say which."""
        report = PruneReport(dry_run)
        plans: asyncio.Queue[KeyPrune | None] = asyncio.Queue(PRUNE_AT_ONCE * 4)

        async def lister() -> None:
            listing = self.list_all(bucket, prefix, delimiter="", versions=True)
            async for versions in by_key(listing):
                plan = key_prune(versions, before)
                report.kept += plan.kept
                if dry_run:
                    report.removed += plan.replaced + ([plan.marker] if plan.marker else [])
                elif plan.replaced or plan.marker:
                    await plans.put(plan)
            for _ in range(PRUNE_AT_ONCE):
                await plans.put(None)

        async def worker() -> None:
            while (plan := await plans.get()) is not None:
                await self._prune_key(bucket, plan, report)

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(lister())
                for _ in range(0 if dry_run else PRUNE_AT_ONCE):
                    tg.create_task(worker())
        except* DfsError as group:
            # callers (and the CLI's error mapping) expect the DfsError itself, not a group
            raise group.exceptions[0] from None
        return report

    async def _prune_key(self, bucket: str, plan: KeyPrune, report: PruneReport) -> None:
        """``plan``'s versions removed one after another, its marker last."""
        for o in plan.replaced:
            await self._remove_version(bucket, o, report)
        if plan.marker is not None and await self._alone(bucket, plan.marker):
            await self._remove_version(bucket, plan.marker, report)

    async def _alone(self, bucket: str, marker: Entry) -> bool:
        """Whether the key lists nothing under its delete ``marker`` now: a version the
        listing gave elsewhere, or one whose removal did not happen, keeps the marker (so
        it cannot become current)."""
        seen = False
        async for o in self.list_all(bucket, marker["key"], delimiter="", versions=True):
            if o["key"] != marker["key"]:
                break  # a longer key: the marker's key is done
            if seen:
                return False  # something under the marker
            seen = o["version_id"] == marker["version_id"]
        return seen  # False too when the marker is gone already

    async def _remove_version(self, bucket: str, o: Entry, report: PruneReport) -> None:
        # gone already (another prune, or the answer to this one was lost): removed too
        with contextlib.suppress(KeyNotFound):
            await self.remove(bucket, o["key"], version=o["version_id"])
        report.removed.append(o)
