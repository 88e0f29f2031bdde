"""The bucket-configuration port: documents S3 keeps beside a bucket that the namespace's
records have no field for: a bucket's CORS rules (kind ``"cors"``) and its tags (kind
``"tagging"``).

A document is opaque text (the S3 gateway stores JSON) keyed by ``(bucket, kind)`` and
stamped with the bucket's *generation*: the bucket's ``created_at``, written as ``repr``
of the float. A read with another generation answers None, so a bucket deleted and created
again (by any tenant) never inherits its predecessor's configuration, without the bucket's
delete having to know about these documents.

Contract (both backends; ``tests/contract/test_bucket_config.py``):
  - ``put_bucket_config(bucket, generation, kind, document)`` replaces what was there;
  - ``get_bucket_config(bucket, generation, kind)`` returns the document put for exactly
    that generation, else None;
  - ``delete_bucket_config(bucket, kind)`` removes it (nothing there is not an error).
Every method may raise Unavailable. Must not import aiohttp, boto3 or sqlite3.
"""

from __future__ import annotations

from typing import Protocol, cast

KIND_CORS = "cors"
KIND_TAGGING = "tagging"
MAX_DOCUMENT_BYTES = 64 * 1024  # S3's limit on a CORS configuration


def generation_of(created_at: float) -> str:
    """A bucket's generation: its creation time, exactly."""
    return repr(float(created_at))


class BucketConfigStore(Protocol):
    async def put_bucket_config(
        self, bucket: str, generation: str, kind: str, document: str
    ) -> None: ...
    async def get_bucket_config(self, bucket: str, generation: str, kind: str) -> str | None: ...
    async def delete_bucket_config(self, bucket: str, kind: str) -> None: ...


def bucket_config_store(meta: object) -> BucketConfigStore | None:
    """The metadata backend as a BucketConfigStore, None when it does not implement it."""
    return cast(BucketConfigStore, meta) if hasattr(meta, "put_bucket_config") else None
