"""Paged uploads: files of any number of chunks, planned, proven and committed page by page,
so a client can send the chunks of one page while it scans the next (issue 19 item 5).

1. ``start``: a pending file with an empty manifest (its size and sha256 are not known yet).
2. ``page``: page ``n`` of its manifest is appended (at most ``protocol.MAX_PAGE_CHUNKS``
   chunks; the same page again is a no-op, so a retry or a resumed upload may send it
   again) and planned exactly as ``/resume-upload`` plans: the chunks not proven (a receipt
   for this file id, or owned by the tenant already) with their copies on live nodes; its
   small chunks also come in ``packs`` (``dfs.api.upload_packs``, as ``/init-uploads``'),
   one ``/store-chunks`` request each under one capability.
3. ``prove``: the page's chunks are checked as finalize checks a whole file (a receipt for
   every chunk the tenant did not own, REPLICATION_FACTOR copies on live nodes, asked of
   the nodes but those the client excludes, while enough are left) and the page is marked
   proven; 409 ``incomplete_upload`` otherwise.
4. ``finish``: the file gets its size and sha256, if every page from 0 on is proven and
   they add up (``MetadataStore.seal_file``), and is committed in one step as any file.

The checks are finalize's (the Coordinator's), made per page: receipts bound to the pending
file id keep the Dropship defence, and each page's copies are checked when it is proven
(a node dying after that is repair's, as for a node dying after a finalize). A node that
began draining after a page was proven is not: until ``finish`` its chunks are referenced by
no complete file, so the drain's status does not count them and may say done. So while any
node drains, ``finish`` counts the file's copies again without the draining ones first
(``_off_draining``: a chunk short of them is copied off the draining node, or the commit is
refused, ``incomplete_upload``, if no counted copy is left to copy from).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from dfs import protocol
from dfs.api.bodies import DEFAULT_TENANT, distinct_chunks, file_body
from dfs.api.coordinator import Coordinator
from dfs.api.drain import began_draining
from dfs.api.draining_copies import counted_copies
from dfs.api.finalizing import Finalizing, check_copies, counting, excluding
from dfs.api.upload_packs import plan_packs
from dfs.errors import Conflict, FileNotFound, IncompleteUpload
from dfs.ids import new_file_id
from dfs.meta.base import FILE_COMPLETE, FileRecord, Location, ManifestEntry

COMMIT_ROUNDS = 10
"""Commits a finish tries: each after recording again the copies of up to 100 chunks
garbage collection took the rows of (``IncompleteUpload``'s ``missing``)."""


async def start(
    coord: Coordinator,
    name: str,
    chunker: str,
    mode: int | None,
    mtime: float | None,
    tenant: str = DEFAULT_TENANT,
    *,
    for_object: bool = False,
) -> dict[str, Any]:
    """A new pending paged upload; ``for_object``: created marked (``FileRecord.for_object``),
    the mark the commit at ``finish`` keeps (``MetadataStore.commit_file``)."""
    await coord.writable_nodes()  # 503 now rather than at the first page
    rec = FileRecord(
        file_id=new_file_id(),
        name=name,
        size=0,
        sha256="",
        chunker=chunker,
        tenant=tenant,
        created_at=coord.clock(),
        mode=mode,
        mtime=mtime,
        for_object=for_object,
    )
    await coord.meta.create_file(rec, [])
    return {
        "file_id": rec.file_id,
        "replication_factor": coord.rf,
        "max_page_chunks": protocol.MAX_PAGE_CHUNKS,
    }


async def _pending(coord: Coordinator, file_id: str, tenant: str) -> FileRecord:
    rec = await coord.meta.get_file(file_id, tenant)
    if rec.state == FILE_COMPLETE:
        raise Conflict(f"file {file_id} is already complete")
    return rec


async def page(
    coord: Coordinator,
    file_id: str,
    no: int,
    entries: Sequence[ManifestEntry],
    receipts: Mapping[str, object],
    tenant: str = DEFAULT_TENANT,
    exclude: Collection[str] = (),
) -> dict[str, Any]:
    """Append page ``no`` and plan the chunks of it still to send."""
    rec = await _pending(coord, file_id, tenant)
    coord.check_upload_age(rec)
    await coord.meta.append_manifest_page(file_id, no, entries)
    chunks = distinct_chunks(entries)
    upload = await coord.plan_missing(file_id, chunks, receipts, tenant, exclude)
    plan: dict[str, Any] = {
        "file_id": file_id,
        "page": no,
        "replication_factor": coord.rf,
        "chunks_total": len(entries),
        "chunks_distinct": len(chunks),
        "upload": upload,
    }
    plan["packs"] = await asyncio.to_thread(plan_packs, coord, [plan]) if upload else []
    return plan


async def prove(
    coord: Coordinator,
    file_id: str,
    no: int,
    receipts: Mapping[str, object],
    tenant: str = DEFAULT_TENANT,
    exclude: Collection[str] = (),
) -> dict[str, Any]:
    """Check page ``no`` as finalize checks a file, and mark it proven. ``exclude``: nodes
    the client's writes just failed on (a hung one would hold the proof for its whole
    has-chunks deadline), not asked, unless too few live nodes are left to hold
    REPLICATION_FACTOR copies: then every live node is."""
    rec = await _pending(coord, file_id, tenant)
    coord.check_upload_age(rec)
    entries, proven = await coord.meta.get_manifest_page(file_id, no)
    if not proven:
        chunks = distinct_chunks(entries)
        owned = await coord.owned_for_finalize(tenant, list(chunks))
        Finalizing(0, rec, chunks, receipts).check_receipts(coord.cfg.cluster_secret, owned)
        if chunks:
            holders = await coord.holders(
                chunks, excluding(await coord.live_nodes(), exclude, coord.rf)
            )
            new: list[Location] = []
            draining = await coord.drains.ids()
            counts = await counted_copies(coord, chunks, holders, draining, new, top_up=not exclude)
            await _not_draining_since(coord, draining, counts)
            if new:
                await coord.meta.add_locations(new, coord.clock())
            check_copies(chunks, counts, coord.copies_to_commit)
        await coord.meta.mark_page_proven(file_id, no)
    return {"file_id": file_id, "page": no, "proven": True}


async def finish(
    coord: Coordinator, file_id: str, size: int, sha256: str, tenant: str = DEFAULT_TENANT
) -> dict[str, Any]:
    """Seal and commit the paged upload; a file already complete is answered as it is."""
    rec = await coord.meta.get_file(file_id, tenant)
    if rec.state != FILE_COMPLETE:
        coord.check_upload_age(rec)
        if not rec.sha256:  # a paged upload not sealed yet: seal_file checks its pages
            await coord.meta.seal_file(file_id, size, sha256)
        elif (rec.size, rec.sha256) != (size, sha256):
            raise Conflict(f"file {file_id} has another size or sha256 (sealed, or not paged)")
        else:  # sealed by a finish refused before (DynamoDB: now committing), or never paged
            await _check_whole(coord, file_id, size)
        await _off_draining(coord, file_id)
        for _ in range(COMMIT_ROUNDS - 1):
            try:
                return file_body(await coord.meta.commit_file(file_id, coord.clock()))
            except IncompleteUpload as exc:
                await _found_again(coord, file_id, exc)
        rec = await coord.meta.commit_file(file_id, coord.clock())
    return file_body(rec)


async def _off_draining(coord: Coordinator, file_id: str) -> None:
    """While nodes drain: each chunk of the file with a recorded copy on a draining node and
    fewer than REPLICATION_FACTOR on others, confirmed with the live nodes and topped up
    from a copy that is left (a draining node's first), before the file is committed."""
    draining = await coord.drains.ids()
    if not draining:
        return
    chunks = distinct_chunks(await coord.meta.get_manifest(file_id))
    where = await coord.meta.get_locations(list(chunks))
    need = coord.copies_to_commit
    short = {
        c: n
        for c, n in chunks.items()
        if where.get(c, set()) & draining and len(where[c] - draining) < need
    }
    if short:
        holders = await coord.holders(short, await coord.live_nodes())
        new: list[Location] = []
        counts = await counted_copies(coord, short, holders, draining, new)
        if new:
            await coord.meta.add_locations(new, coord.clock())
        check_copies(short, counts, need)
        await _not_draining_since(coord, draining, counts)


async def _check_whole(coord: Coordinator, file_id: str, size: int) -> None:
    """Conflict unless ``file_id``'s pages are whole, as ``seal_file`` found them: numbered
    from 0, each proven, each starting where the one before ended, ``size`` bytes in all.

    A file with a sha256 is not sealed (again): a paged upload is created without one, so
    it is one sealed by a finish refused before, or a file that was never paged (an
    /init-upload's, its size and sha256 declared at its creation). Its commit checks no
    receipt, so without this an /init-upload's pending file was committed as it was (or
    sealed with size 0, its manifest's chunks still referenced): every chunk it named
    counted as the tenant's without a receipt, and any tenant could read another's chunk
    knowing only its sha256 (the "Dropship" attack finalize refuses)."""
    offset, no = 0, 0
    while True:
        try:
            entries, proven = await coord.meta.get_manifest_page(file_id, no)
        except FileNotFound:
            break
        if not proven or (entries and entries[0].offset != offset):
            raise Conflict(f"page {no} of file {file_id} is missing or not proven")
        if entries:
            offset = entries[-1].offset + entries[-1].size
        no += 1
    if offset != size:
        raise Conflict(f"the proven pages of file {file_id} hold {offset} bytes, not {size}")


async def _found_again(coord: Coordinator, file_id: str, exc: IncompleteUpload) -> None:
    """Record again the copies of the chunks the commit named (``missing``): garbage
    collection deleted their rows after their page was proven, and kept their copies
    (written within the commit window). Too few copies found: the commit is refused."""
    missing = set(exc.details.get("missing", ()))
    entries = [e for e in await coord.meta.get_manifest(file_id) if e.chunk_id in missing]
    chunks = distinct_chunks(entries)
    if not chunks:
        raise exc
    holders = await coord.holders(chunks, await coord.live_nodes())
    draining = await coord.drains.ids()
    counts = counting(holders, draining)
    check_copies(chunks, counts, coord.copies_to_commit)
    await _not_draining_since(coord, draining, counts)


async def _not_draining_since(
    coord: Coordinator, draining: frozenset[str], counts: Mapping[str, set[str]]
) -> None:
    """Busy (the client sends it again, counted anew) if a node ``counts`` counted a copy
    on began draining since ``draining`` was read (``dfs.api.drain``)."""
    if await coord.drains.relied_on(draining, counts):
        raise began_draining()
