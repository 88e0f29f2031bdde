"""Trimming a chunk's surplus copies (repair's last step), safe against a pass that stalled.

A chunk with more live copies than REPLICATION_FACTOR (a node came back after being
repaired around) loses the surplus on its lowest-ranked holders that really hold it, a
copy in each zone kept first (``durability_policy.trim_order``, placement's rule). "Really
hold": ``/has-chunks`` with ``verify``, each holder reading its copy back, so a trim never
counts on a copy that is not there or that rotted since the last scrub (a rotten one is
quarantined by its node and replaced by repair). Copies on draining nodes go once the
others are enough. A node deletes a copy only if it was not written or
re-sent within DFS_GC_GRACE (``min_age``: an upload commits on its acknowledgements within
0.9 x that without asking again); a copy kept is recorded again and the chunk looked at by
the next passes.

Repair runs under a lease (``dfs.api.pass_lease``), renewed before every trim, but a pass
can stall past its lease anywhere after a renewal, while another process takes the lease
over and trims too. Two passes that each delete a different copy leave fewer than the
factor. Two rules close that:

- **Before the forget:** a trim forgets its copy only while every copy it counts on keeping
  is still recorded (``MetadataStore.remove_surplus_location``, one conditional write), so
  a pass stalled before it, trimming by a stale count, finds another pass's trims and
  deletes nothing.
- **After it, before the node's delete:** the copy forgotten is still on its node and may
  be recorded again meanwhile (the orphan sweep, the inventory, a ``/has-chunks`` answer),
  then counted on and kept by the other pass, which trims another. So a trim's delete
  capability expires ``cap_ttl`` after the pass's last lease renewal, whenever it is sent
  (``Trims.renewed``), and a pass that took the lease from another owner trims nothing
  until every capability that owner could have minted has expired on every node
  (``fence``: its lease's expiry + ``cap_ttl`` + twice ``auth.CLOCK_SKEW``, one skew for
  each API clock against the nodes'). Its surplus chunks are left to its next passes.
  (``Repair`` reads the lease before it acquires it: a whole time to live between the two
  counts as a takeover, whatever the read showed.)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping

from dfs import auth, protocol
from dfs import durability_policy as policy
from dfs.api.coordinator import Coordinator
from dfs.api.gc import record_if_held
from dfs.api.pass_lease import renew_every
from dfs.errors import DfsError
from dfs.meta.base import ChunkState, Lease, Location, NodeRecord

log = logging.getLogger("dfs.api.repair")
DEFERRED_MAX = 100_000  # chunks whose trim waits, kept to look at again
CAP_MARGIN = 60.0
"""Seconds a trim's delete capability outlives the renewal share of its pass's lease."""


def cap_ttl(lease_ttl: float) -> float:
    """How long after a lease renewal a trim's delete capability expires: past the next
    renewal due (``pass_lease.renew_every``) by ``CAP_MARGIN``. At most 11 minutes, under
    ``auth.CAP_MAX_TTL``: a node refuses a capability that lives longer (an hourly repair's
    3 h lease gave ~31 min, and no trim deleted anything)."""
    return renew_every(lease_ttl) + CAP_MARGIN


def fence(previous: Lease | None, owner: str, lease_ttl: float) -> float:
    """Until when (by the API clock) a pass of ``owner`` taking the lease over from
    ``previous`` trims nothing: 0 if it held the lease itself last, or nobody did."""
    if previous is None or previous.owner == owner:
        return 0.0
    return previous.expires_at + cap_ttl(lease_ttl) + 2 * auth.CLOCK_SKEW


class Trims:
    """One repair process's trims. ``keep``: renews the pass's lease if due (LeaseLost once
    lost); ``renewed``: the API-clock time of its last renewal; ``deferred``: the chunks the
    next passes look at again (shared with ``Repair``)."""

    def __init__(
        self,
        coord: Coordinator,
        keep: Callable[[], Awaitable[None]],
        renewed: Callable[[], float],
        lease_ttl: float,
        deferred: set[str],
    ) -> None:
        self.coord = coord
        self.meta = coord.meta
        self._keep = keep
        self._renewed = renewed
        self._lease_ttl = lease_ttl
        self.deferred = deferred
        self.fenced_until = 0.0

    def _defer(self, chunk_id: str) -> None:
        if len(self.deferred) < DEFERRED_MAX:
            self.deferred.add(chunk_id)

    async def trim(
        self, c: ChunkState, live_by_id: Mapping[str, NodeRecord], draining: Collection[str]
    ) -> int:
        """Remove copies of ``c`` beyond REPLICATION_FACTOR; the copies the nodes deleted."""
        if self.coord.clock() < self.fenced_until:
            self._defer(c.chunk_id)  # another owner's delete capabilities may still be valid
            return 0
        holders = [live_by_id[n] for n in c.nodes if n in live_by_id]
        # read back, not only present: a copy kept must be good (two that rotted since the
        # last scrub, counted on, would have a good surplus copy deleted for them)
        asked = {c.chunk_id: c.size}
        really = (await self.coord.holders(asked, holders, verify=True))[c.chunk_id]
        held = [n for n in holders if n.node_id in really]
        if len(held) < len(holders):  # copies gone or rotten (quarantined): forgotten above,
            self._defer(c.chunk_id)  # so the next passes copy the chunk back to the factor
        staying = [n for n in held if n.node_id not in draining]
        surplus = len(staying) - self.coord.rf
        # a copy in each zone kept first, then the best-ranked (placement's rule), on past a
        # copy kept as too young (often repair's own, after a node came back) to an older
        # one: the next pass over this chunk may be an hour away
        kept = {n.node_id for n in staying}  # each delete needs the copies still kept
        for node in policy.trim_order(c.chunk_id, staying, self.coord.rf):
            if len(staying) - len(kept) >= surplus:
                break
            await self._keep()  # never delete under a lease another process may hold
            if await self._trim_copy(c, node, kept - {node.node_id}):
                kept.discard(node.node_id)
        trimmed = len(staying) - len(kept)
        for node in [n for n in held if n.node_id in draining and surplus >= 0]:
            await self._keep()
            trimmed += await self._trim_copy(c, node, kept)
        return trimmed

    def _delete_cap(self, chunk_id: str, node_id: str, grace: float) -> str:
        """The delete capability, expiring ``cap_ttl`` after the lease's last renewal."""
        extra = protocol.delete_cap_extra(grace)
        ttl = cap_ttl(self._lease_ttl)
        return self.coord.cap(
            auth.OP_DELETE, chunk_id, node_id, extra, ttl=ttl, now=self._renewed()
        )

    async def _trim_copy(self, c: ChunkState, node: NodeRecord, kept: set[str]) -> int:
        """Delete this surplus copy (1 if the node did): not if written or re-sent within
        DFS_GC_GRACE, nor unless every copy in ``kept`` is still recorded.

        An upload commits on the copies the nodes acknowledged within the commit window
        (0.9 x the grace of its start) without asking again, so a younger copy may be one an
        upload is about to record: deleted, it would be recorded again with nothing there.
        The node keeps such a copy (``min_age``, bound in the capability, as the orphan
        sweep's), and its location is recorded again; a later pass trims it."""
        grace = self.coord.cfg.gc_grace
        gone = [Location(c.chunk_id, node.node_id, c.size)]
        cap = self._delete_cap(c.chunk_id, node.node_id, grace)
        # forget the copy first, so no new download plan points at it
        forgotten = await self.meta.remove_surplus_location(gone[0], kept)
        if not forgotten:  # another pass trimmed meanwhile, or a copy counted on was lost
            log.info(
                "trim of %s on %s refused: that copy, or one of those it keeps (%s), is not"
                " recorded now (another pass trimmed, or a copy was lost); deferred to the"
                " next pass",
                c.chunk_id[:12],
                node.node_id,
                ",".join(sorted(kept)),
            )
        deleted = False
        try:
            if forgotten:
                deleted = await self.coord.nodes.delete_chunk(
                    node.url, c.chunk_id, cap=cap, min_age=grace
                )
        except DfsError as exc:
            log.warning("trim of %s on %s failed: %s", c.chunk_id[:12], node.node_id, exc)
        if not deleted:
            self._defer(c.chunk_id)  # looked at again by the next passes
        if forgotten and not deleted:
            # kept (too young), or the delete failed: recorded again if the node holds it
            try:
                await record_if_held(self.coord, node, gone)
            except DfsError as exc:  # left forgotten: the inventory finds it again
                log.warning("trim of %s on %s: %s", c.chunk_id[:12], node.node_id, exc)
        if deleted:
            # and again once deleted: whoever saw the copy before the delete (the orphan
            # sweep, a has-chunks answer) may have recorded it meanwhile
            await self.meta.remove_locations(gone)
        return int(deleted)
