"""The multipart-upload port: S3 multipart uploads in progress and their parts.

An upload (``MultipartUpload``) names the object it will become (tenant, bucket, key, the
content type, user metadata and checksum algorithm given at CreateMultipartUpload); each
part (``UploadPart``) is a complete file of the tenant (``file_id``, stored by the gateway
through ``dfs.api.ingest``) with its size, ETag and the checksums verified as it arrived. The store only records them: the
service (``dfs.api.multipart``) stores and releases the parts' files.

States, and the conditional writes that close the races between calls:

- ``open``: parts may be put. ``put_upload_part`` records a part only while the upload is
  open, in the same atomic step that checks it (so a part racing a Complete is either in
  the list Complete reads, or refused with ``UploadNotFound``); a part with the same number
  is replaced and its file id returned, so exactly one caller releases it.
- ``completing``: a Complete won ``set_multipart_state(open -> completing)``; a second
  Complete, an Abort and part uploads get ``UploadNotFound``. A Complete whose part list is
  refused moves it back to ``open``.
- ``done``: the upload's fate is sealed (completed, aborted or collected); the caller
  releases the parts' files, then ``delete_multipart_upload`` forgets it. An upload left in
  any state by a crash is found by ``stale_multipart_uploads`` once it is old enough.

``tests/contract/test_multipart_store.py`` holds both backends (``dfs.meta.sqlite_multipart``,
``dfs.meta.dynamo.store_multipart``) to this contract. Must not import aiohttp, boto3 or
sqlite3.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol, cast

UPLOAD_OPEN = "open"
UPLOAD_COMPLETING = "completing"
UPLOAD_DONE = "done"
MAX_PARTS = 10_000  # S3's part numbers: 1 to 10,000


def new_upload_id(now: float) -> str:
    """A fresh upload id: its creation time in microseconds (16 hex digits, so ids sort in
    creation order) then 16 random hex digits."""
    return f"{int(now * 1e6):016x}{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    upload_id: str
    tenant: str
    bucket: str
    key: str
    created_at: float
    content_type: str = ""
    user_metadata: tuple[tuple[str, str], ...] = ()
    state: str = UPLOAD_OPEN
    headers: tuple[tuple[str, str], ...] = ()  # the object's stored response headers
    checksum: str = ""  # x-amz-checksum-algorithm (lower-case): the object's composite checksum


@dataclass(frozen=True, slots=True)
class UploadPart:
    part_number: int
    file_id: str  # "" for an empty part (no file)
    size: int
    etag: str  # hex MD5 of the part's bytes
    last_modified: float
    checksums: tuple[tuple[str, str], ...] = ()  # (algorithm, base64 value) verified on upload


class MultipartStore(Protocol):
    async def create_multipart_upload(self, upload: MultipartUpload) -> None:
        """Record a new open upload (its id is fresh: ``new_upload_id``)."""
        ...

    async def get_multipart_upload(self, upload_id: str) -> MultipartUpload:
        """The upload in any state; ``UploadNotFound`` if it is not recorded."""
        ...

    async def put_upload_part(self, upload_id: str, part: UploadPart) -> str | None:
        """Record ``part`` if the upload is open, replacing the part with its number; returns
        the replaced part's file id (None if there was none). ``UploadNotFound`` if the
        upload is missing or not open: the caller then releases ``part.file_id`` itself."""
        ...

    async def list_upload_parts(
        self, upload_id: str, after: int = 0, limit: int = MAX_PARTS
    ) -> list[UploadPart]:
        """The parts numbered above ``after``, ascending, at most ``limit``."""
        ...

    async def set_multipart_state(
        self, upload_id: str, expect: Collection[str], state: str
    ) -> MultipartUpload:
        """Move the upload to ``state`` if its state is one of ``expect`` (one conditional
        write); returns it as it was before. ``UploadNotFound`` if it is missing or in
        another state."""
        ...

    async def delete_multipart_upload(self, upload_id: str) -> None:
        """Forget the upload and its parts (idempotent)."""
        ...

    async def list_multipart_uploads(
        self, bucket: str, prefix: str = "", after: tuple[str, str] | None = None, limit: int = 1000
    ) -> list[MultipartUpload]:
        """The bucket's uploads whose key starts with ``prefix``, ordered by (key, upload id)
        in UTF-8 byte order, strictly after ``after`` = (key, upload id), at most ``limit``;
        uploads in state ``done`` are left out, and fewer than ``limit`` means the end (a
        page is filled past the ones left out)."""
        ...

    async def count_multipart_uploads(self, limit: int) -> int:
        """How many uploads are recorded (any state), counted up to ``limit``: bounded work
        for a metrics gauge."""
        ...

    async def stale_multipart_uploads(
        self, before: float, limit: int = 1000
    ) -> list[MultipartUpload]:
        """Uploads in any state created before ``before``, oldest first, at most ``limit``."""
        ...


def multipart_store(meta: object) -> MultipartStore | None:
    """The metadata backend as a ``MultipartStore`` (both backends are one), or None."""
    return cast(MultipartStore, meta) if hasattr(meta, "put_upload_part") else None
