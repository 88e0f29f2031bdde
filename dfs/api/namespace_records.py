"""The records the namespace service builds and hands out, apart from its logic
(``dfs.api.namespace_service``): the namespace half of a metadata backend, the version a
write links (``new_object``), a fresh file taken as written, and a resolved version with its
bucket. Plain functions of their arguments (no store read), shared by the service and by
``dfs.api.object_links``, which builds the versions of many links itself.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import cast

from dfs.api.bodies import Principal
from dfs.api.namespace_bodies import ObjectFields
from dfs.meta.base import FILE_COMPLETE, FileRecord, MetadataStore
from dfs.meta.namespace import (
    ACCESS_PRIVATE,
    BucketRecord,
    NamespaceStore,
    NewObject,
    ObjectVersion,
)


def namespace_store(meta: MetadataStore) -> NamespaceStore | None:
    """The namespace half of a metadata backend (itself, or its ``namespace``), or None."""
    ns: object = getattr(meta, "namespace", meta)
    return cast(NamespaceStore, ns) if hasattr(ns, "put_object") else None


def guess_type(key: str) -> str:
    return mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"


@dataclass(frozen=True)
class Resolved:
    """A readable version and its bucket (whose tenant owns the version's file)."""

    bucket: BucketRecord
    version: ObjectVersion


def new_object(
    b: BucketRecord,
    key: str,
    file_id: str,
    size: int,
    sha256: str,
    fields: ObjectFields,
    etag: str | None,
) -> NewObject:
    """The version a write links: ``fields`` with their defaults, written by the tenant
    that owns ``b`` as it was read (``NewObject.owner``)."""
    return NewObject(
        bucket=b.name,
        key=key,
        file_id=file_id,
        size=size,
        etag=sha256 if etag is None else etag,
        sha256=sha256,
        content_type=fields.content_type or guess_type(key),
        user_metadata=fields.metadata or (),
        tags=fields.tags or (),
        access=fields.access or ACCESS_PRIVATE,
        headers=fields.headers or (),
        owner=b.tenant,
    )


def fresh_file(who: Principal, file_id: str, written: FileRecord | None) -> FileRecord | None:
    """``written`` when it is complete file ``file_id`` of the caller's tenant: what
    ``get_complete_file`` would read back."""
    if written is None or written.file_id != file_id or written.state != FILE_COMPLETE:
        return None
    return written if written.tenant == who.tenant else None
