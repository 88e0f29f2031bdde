"""S3 multipart uploads as a service: parts stored as files, the object assembled from them
at Complete so that it dedups like a single PUT, and abandoned uploads collected.

- Each part streams through ``dfs.api.ingest`` (server-side FastCDC and SHA-256 straight to
  the nodes, memory bounded) into a complete file of its own (``reuse=False``: the upload
  owns it and deletes it later, even when the tenant stores the same bytes elsewhere),
  named with ``HIDDEN_NAME_PREFIX`` so that no listing shows it as the tenant's file and
  no dedup lookup hands it out (``Coordinator.find_by_sha256``). The
  part is recorded in the ``MultipartStore`` only while the upload is open; a part that
  replaced one with its number releases the old file, a part refused releases its own.
- Parts arrive in parallel, so each was chunked on its own, with a chunk boundary forced at
  every part edge. ``assemble`` (at Complete) re-chunks only the bytes around each part
  edge (``dfs.api.multipart_assemble``, ``dfs.api.splice``): the object's manifest is
  exactly the one a single stream gives, and only the few chunks cut around the edges are
  new. The whole-file SHA-256 the native client checks needs every byte in order: this
  process keeps it as the parts arrive (``chains``, ``dfs.api.multipart_hash``), and only
  when it could not (parts through other gateways, UploadPartCopy) are all the parts'
  verified chunks read back in order.
- Then the parts' files are deleted: chunks only they held (the part-edge ones) become
  garbage, collected after the grace like any other.
- ``collect_abandoned`` (run by ``dfs.api.gc``): uploads older than DFS_S3_MULTIPART_TTL
  are moved to ``done`` whatever their state, their parts' files deleted, and forgotten.

Knows nothing of aiohttp.web or of S3's XML; the gateway's routes (``dfs.s3.routes_multipart``)
check part lists and speak S3.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from dfs.api import download_plans, multipart_assemble, ranges
from dfs.api.coordinator import Coordinator
from dfs.api.file_stream import verified_bytes
from dfs.api.ingest import Ingested, ReadFn, ingest
from dfs.api.multipart_ahead import Ahead
from dfs.api.multipart_hash import Chains, Tap
from dfs.chunking import ChunkerProfile
from dfs.errors import DfsError, FileNotFound, PayloadTooLarge, UploadNotFound
from dfs.meta.base import HIDDEN_NAME_PREFIX, FileRecord, ManifestEntry
from dfs.meta.multipart import (
    UPLOAD_COMPLETING,
    UPLOAD_DONE,
    UPLOAD_OPEN,
    MultipartStore,
    MultipartUpload,
    UploadPart,
    multipart_store,
    new_upload_id,
)
from dfs.meta.namespace import BucketRecord

log = logging.getLogger("dfs.api.multipart")

MIN_PART_BYTES = 5 * 1024**2  # S3: every part but the last
MAX_PART_BYTES = 5 * 1024**3
MAX_OBJECT_BYTES = 5 * 1024**4
DEFAULT_MULTIPART_TTL = 7 * 24 * 3600.0


def multipart_etag(part_etags: Sequence[str]) -> str:
    """S3's ETag of a multipart object: MD5 of the parts' binary MD5s, a dash, their count."""
    md5 = hashlib.md5(usedforsecurity=False)
    for etag in part_etags:
        md5.update(bytes.fromhex(etag))
    return f"{md5.hexdigest()}-{len(part_etags)}"


def of_bucket(upload: MultipartUpload, bucket: BucketRecord) -> bool:
    """Whether ``upload`` was created in ``bucket`` as it is now, not in an earlier bucket of
    its name (deleted, the name taken again since): dated no earlier than the bucket
    (``Multipart.create``'s ``not_before``)."""
    return upload.bucket == bucket.name and upload.created_at >= bucket.created_at


class StreamReader:
    """``read(n)`` over an async iterator of byte strings (what ``ingest`` reads)."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._buf = memoryview(b"")

    async def read(self, n: int) -> bytes:
        while not self._buf:
            nxt = await anext(self._source, None)
            if nxt is None:
                return b""
            self._buf = memoryview(nxt)
        out, self._buf = self._buf[:n], self._buf[n:]
        return bytes(out)


class Multipart:
    """The multipart calls on ``coord``'s cluster and metadata store."""

    def __init__(self, coord: Coordinator, store: MultipartStore | None = None) -> None:
        self.coord = coord
        found = store or multipart_store(coord.meta)
        if found is None:
            raise TypeError("the metadata backend stores no multipart uploads")
        self.store = found
        self.chains = Chains(splice=ChunkerProfile.default())
        """The object's SHA-256 kept, and the object spliced ahead, as parts arrive
        (``dfs.api.multipart_hash``, ``dfs.api.multipart_ahead``)."""

    async def create(
        self,
        tenant: str,
        bucket: str,
        key: str,
        content_type: str = "",
        metadata: tuple[tuple[str, str], ...] = (),
        headers: tuple[tuple[str, str], ...] = (),
        checksum: str = "",
        not_before: float = 0.0,
    ) -> MultipartUpload:
        """A new upload of ``bucket/key``. ``not_before``: the bucket's ``created_at``: an
        upload is dated no earlier than the bucket it is created in (``of_bucket``), even by
        a process whose clock is behind the one that created the bucket."""
        now = max(self.coord.clock(), not_before)
        upload = MultipartUpload(
            new_upload_id(now),
            tenant,
            bucket,
            key,
            now,
            content_type,
            metadata,
            headers=headers,
            checksum=checksum,
        )
        await self.store.create_multipart_upload(upload)
        return upload

    async def upload(
        self, upload_id: str, tenant: str, bucket: BucketRecord, key: str
    ) -> MultipartUpload:
        """The caller's upload of ``bucket/key`` that is not done; ``UploadNotFound`` for
        anything else (someone else's, another key's, an earlier bucket's of that name,
        completed or aborted)."""
        u = await self.store.get_multipart_upload(upload_id)
        if (u.tenant, u.key) != (tenant, key) or not of_bucket(u, bucket) or u.state == UPLOAD_DONE:
            raise UploadNotFound(f"no multipart upload {upload_id} of {bucket.name}/{key}")
        return u

    async def uploads_of(
        self,
        bucket: BucketRecord,
        prefix: str,
        after: tuple[str, str] | None,
        limit: int,
        tenant: str | None = None,
    ) -> list[MultipartUpload]:
        """``list_multipart_uploads`` of ``bucket`` as it is now: an earlier bucket's
        uploads of its name left out (``of_bucket``), and those of other tenants than
        ``tenant`` when one is given, read on past them, so that a page shorter than
        ``limit`` still means the end of the list."""
        found: list[MultipartUpload] = []
        while len(found) < limit:
            want = limit - len(found)
            page = await self.store.list_multipart_uploads(bucket.name, prefix, after, want)
            found += [u for u in page if of_bucket(u, bucket) and tenant in (None, u.tenant)]
            if len(page) < want:
                break
            after = (page[-1].key, page[-1].upload_id)
        return found

    async def ingest_part(
        self,
        upload: MultipartUpload,
        number: int,
        read: ReadFn,
        body_sha256: Callable[[], str] | None = None,
    ) -> tuple[str, int, Sequence[ManifestEntry]]:
        """Store a part's bytes as a new file of the upload's tenant; returns its id, size
        and chunks. ``body_sha256``: as ``ingest``'s (the reader hashes the bytes already)."""
        # hidden: a part is no file of the tenant's listings (the object will be, at Complete)
        name = f"{HIDDEN_NAME_PREFIX}s3 part {number} of {upload.upload_id}"
        done = await ingest(
            self.coord,
            upload.tenant,
            name,
            read,
            ChunkerProfile.default(),
            MAX_PART_BYTES,
            reuse=False,
            body_sha256=body_sha256,
            # part 1 as a single stream starts (the object usually starts with it); the
            # others so that their chunks come back in step with the stream sooner
            loose_head=number > 1,
        )
        return str(done.body["file_id"]), int(done.body["size"]), done.manifest

    async def hashed(
        self,
        upload: MultipartUpload,
        tap: Tap,
        part: tuple[str, int, Sequence[ManifestEntry]],
    ) -> None:
        """A recorded part's bytes (``tap``; ``part``: its file id, size and chunks) to the
        object's SHA-256 and its splice ahead, and the new chunks that splice cut stored
        (``dfs.api.multipart_ahead``)."""
        file_id, size, chunks = part
        await self.chains.recorded(tap, file_id, size, chunks)
        got = await self.chains.take_unsent(upload.upload_id)
        if got is not None:
            ahead, pieces = got
            await multipart_assemble.send_ahead(self.coord, upload.tenant, ahead, pieces)

    async def record_part(self, upload: MultipartUpload, part: UploadPart) -> None:
        """Record ``part`` (its file already stored); releases the file it replaced, or its
        own file when the upload is no longer open."""
        try:
            old = await self.store.put_upload_part(upload.upload_id, part)
        except UploadNotFound:
            await self.release_files(upload.tenant, [part.file_id])
            raise
        if old and old != part.file_id:
            await self.release_files(upload.tenant, [old])

    async def part_source(
        self, tenant: str, file_id: str, rng: ranges.ByteRange | None = None
    ) -> AsyncIterator[bytes]:
        """The verified bytes of the tenant's complete file (or of ``rng`` of it)."""
        rec = await self.coord.get_complete_file(file_id, tenant)
        plan = await download_plans.plan_of(self.coord, rec)
        async for data in verified_bytes(self.coord, plan, rng):
            yield data

    async def begin_complete(self, upload: MultipartUpload) -> list[UploadPart]:
        """Move the upload to ``completing`` (one Complete wins; Abort and part uploads are
        refused from now on) and return all its parts."""
        await self.store.set_multipart_state(upload.upload_id, {UPLOAD_OPEN}, UPLOAD_COMPLETING)
        return await self.store.list_upload_parts(upload.upload_id)

    async def reopen(self, upload: MultipartUpload) -> None:
        """A Complete that failed gives the upload back (parts may be sent again)."""
        with contextlib.suppress(UploadNotFound):
            await self.store.set_multipart_state(upload.upload_id, {UPLOAD_COMPLETING}, UPLOAD_OPEN)

    async def assemble(self, upload: MultipartUpload, parts: Sequence[UploadPart]) -> Ingested:
        """Store the object of ``parts`` (in order) as a file chunked as one stream
        (``dfs.api.multipart_assemble``: only the bytes around part edges are chunked again)."""
        name = upload.key.rsplit("/", 1)[-1] or "object"
        profile = str(ChunkerProfile.default())
        recs = [
            await self.coord.get_complete_file(p.file_id, upload.tenant) for p in parts if p.file_id
        ]
        whole, ahead = await self.chains.complete(upload.upload_id, parts)
        how = "kept as the parts arrived" if whole else "read back"
        log.info(
            "completing %s: %d parts, the object's SHA-256 %s, %s",
            upload.upload_id,
            len(recs),
            how,
            "spliced ahead" if ahead else "edges read back",
        )
        # the parts' and the object's; a loose first chunk is never taken as in step here
        loose = ChunkerProfile.default().loose_head_label()
        same = all(r.chunker in (profile, loose) for r in recs)
        if same and whole is not None and ahead is not None and str(ahead.profile) == profile:
            done = await self._assemble_ahead(upload.tenant, name, ahead, whole)
            if done is not None:
                return done
        if same:
            return await multipart_assemble.assemble(self.coord, upload.tenant, name, recs, whole)
        return await self._rechunk_all(upload.tenant, name, recs)

    async def _assemble_ahead(
        self, tenant: str, name: str, ahead: Ahead, whole: str
    ) -> Ingested | None:
        """The object spliced ahead, committed; None to assemble it from the parts instead
        (a chunk cut ahead was not stored, or its commit was refused)."""
        try:
            return await multipart_assemble.assemble_ahead(self.coord, tenant, name, ahead, whole)
        except PayloadTooLarge:
            raise
        except DfsError as exc:
            log.warning(
                "object spliced ahead not committed (%s): assembling it from its parts", exc
            )
            return None

    async def _rechunk_all(self, tenant: str, name: str, recs: Sequence[FileRecord]) -> Ingested:
        """Parts chunked with another profile (the default changed while the upload was
        open): every byte through the chunker again, as a PutObject."""

        async def joined() -> AsyncIterator[bytes]:
            for rec in recs:
                async for data in self.part_source(tenant, rec.file_id):
                    yield data

        reader = StreamReader(joined())
        profile = ChunkerProfile.default()
        # the object's own file, never one of the tenant's found by content (``assemble``)
        limit = MAX_OBJECT_BYTES
        return await ingest(self.coord, tenant, name, reader.read, profile, limit, reuse=False)

    async def finish(self, upload: MultipartUpload, expect: set[str]) -> None:
        """Seal the upload (``done``) if its state is in ``expect``, release its parts'
        files and forget it. ``UploadNotFound`` if it is in another state."""
        await self.store.set_multipart_state(upload.upload_id, expect, UPLOAD_DONE)
        self.chains.drop(upload.upload_id)
        parts = await self.store.list_upload_parts(upload.upload_id)
        await self.release_files(upload.tenant, [p.file_id for p in parts])
        await self.store.delete_multipart_upload(upload.upload_id)

    async def release_files(self, tenant: str, file_ids: Sequence[str]) -> None:
        for file_id in file_ids:
            if file_id:
                with contextlib.suppress(FileNotFound):  # released already
                    await self.coord.delete_file(file_id, tenant)

    async def collect_abandoned(self, now: float, ttl: float, limit: int = 1000) -> int:
        """Abort the uploads created more than ``ttl`` seconds before ``now`` (in any state:
        one left ``completing`` was abandoned by a crashed gateway); returns how many."""
        collected = 0
        for u in await self.store.stale_multipart_uploads(now - ttl, limit):
            with contextlib.suppress(UploadNotFound):  # finished meanwhile
                await self.finish(u, {UPLOAD_OPEN, UPLOAD_COMPLETING, UPLOAD_DONE})
                collected += 1
        if collected:
            log.info("collected %d abandoned multipart upload(s)", collected)
        return collected
