"""Batched reads of pack records for serving: many chunks per worker-thread call, neighbouring
records with one ``pread``, each checked against its record's CRC-32 instead of re-hashed.

Why a CRC is enough here (issue 19): every reader of a chunk a node serves verifies its
SHA-256 itself (clients, the API's proxy and signed downloads, a repair target storing a copy),
so the node's check on read does not stand between a reader and wrong bytes; it is there so
that a node does not keep serving rot. The record's CRC-32 of the payload (and its header's
CRC, which also proves the record is the chunk id asked for) finds rot as well as a re-hash
does for that purpose at a fraction of the CPU, and a record that fails it goes through
``PackSet.read``, which re-hashes it and quarantines it when it is bad. ``scrub`` keeps
re-hashing every stored copy with SHA-256 (``PackChunkStore.scrub``), so rot that a CRC would
miss is still found there.

Blocking: runs on a worker thread, like the rest of ``dfs.chunkstore.packs``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dfs.chunkstore import record
from dfs.chunkstore.pack_state import Loc
from dfs.chunkstore.packs import Buffer, PackSet
from dfs.chunkstore.record import HEADER_SIZE
from dfs.errors import DfsError
from dfs.ids import ChunkId

Located = tuple[int, int, int, Loc]  # (pack, offset, index asked, where)

READ_GAP = 64 * 1024
"""``read_many`` reads through a gap of up to this many bytes (dead records) between two
records it serves rather than issuing a second pread."""
READ_SPAN = 4 * 1024 * 1024
"""At most this many bytes in one pread of ``read_many``."""


def _runs(located: list[Located]) -> list[list[Located]]:
    """Located records (pack, offset, index, loc), sorted, in runs one pread each reads."""
    runs: list[list[Located]] = []
    for item in located:
        if runs:
            last = runs[-1]
            first, prev = last[0], last[-1]
            prev_end = prev[1] + HEADER_SIZE + prev[3].length
            end = item[1] + HEADER_SIZE + item[3].length
            near = item[0] == prev[0] and 0 <= item[1] - prev_end <= READ_GAP
            if near and end - first[1] <= READ_SPAN:
                last.append(item)
                continue
        runs.append([item])
    return runs


def read_many(
    packs: PackSet, chunk_ids: Sequence[ChunkId], locs: Sequence[Loc | None] | None = None
) -> list[Buffer | DfsError | None]:
    """Each id's bytes (a memoryview into the read that took it: no copy per chunk), checked
    against its record's CRCs, or None when no record of it is here (or the ChunkNotFound of
    a record found bad). ``locs``: where the caller just looked each id up (else looked up
    here). Records are read in pack order, neighbours (up to ``READ_GAP`` bytes apart, at
    most ``READ_SPAN`` in all) with one ``pread``. A record that does not check here (rot,
    a compaction that moved it since the lookup, an encoding this node lacks) goes through
    ``PackSet.read``, which looks again, re-hashes it and quarantines it if it is bad."""
    out: list[Buffer | DfsError | None] = [None] * len(chunk_ids)
    located: list[Located] = []
    for i, chunk_id in enumerate(chunk_ids):
        loc = packs.lookup(chunk_id) if locs is None else locs[i]
        if loc is not None:
            located.append((loc.pack, loc.offset, i, loc))
    located.sort(key=lambda item: (item[0], item[1]))
    slow: list[int] = []
    fds: dict[int, int] = {}
    try:
        for run in _runs(located):
            _read_run(packs, run, chunk_ids, out, slow, fds)
    finally:
        for fd in fds.values():
            os.close(fd)
    for i in slow:
        try:
            out[i] = packs.read(chunk_ids[i])
        except DfsError as exc:
            out[i] = exc
    return out


def _read_run(
    packs: PackSet,
    run: list[Located],
    chunk_ids: Sequence[ChunkId],
    out: list[Buffer | DfsError | None],
    slow: list[int],
    fds: dict[int, int],
) -> None:
    """One pread for neighbouring records of one pack; each checked by its CRCs."""
    seq, start = run[0][0], run[0][1]
    end = run[-1][1] + HEADER_SIZE + run[-1][3].length
    try:
        if seq not in fds:
            fds[seq] = os.open(packs.path(seq), os.O_RDONLY)
        buf = memoryview(os.pread(fds[seq], end - start, start))
    except OSError:  # compacted away since the lookup, or a bad sector somewhere in the
        # run: the slow path looks each record up again and reads it alone (one that cannot
        # be read is quarantined there; its neighbours are served)
        slow.extend(i for _s, _o, i, _l in run)
        return
    for _seq, offset, i, loc in run:
        at = offset - start
        if record.serves(buf, at, bytes.fromhex(chunk_ids[i]), loc.length):
            out[i] = buf[at + HEADER_SIZE : at + HEADER_SIZE + loc.length]
        else:
            slow.append(i)
