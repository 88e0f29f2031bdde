"""The namespace port (``dfs.meta.namespace.NamespaceStore``) on DynamoDB, assembled from
its parts, each owning one area:

- ``store_namespace_codec``: the item layout of the ``namespace`` and ``objects`` tables
  (read its docstring first), version ids, page tokens.
- ``store_namespace_buckets``: buckets, their by-tenant and by-grantee index items.
- ``store_namespace_write``: the one transaction of every change of a key's versions
  (versions, head, listing and search index items, usage counters, file link counts).
- ``store_namespace_jobs``: what cannot ride in that transaction: stored bytes after dedup
  per tenant and bucket, and releasing a file no version links any more (durable job items,
  finished by the writer, or by ``finish_namespace_jobs`` after a crash).
- ``store_namespace_objects``: put, get, delete, restore, copy, update of objects.
- ``store_namespace_list``: listing, search (what is indexed, what is a bounded scan) and
  usage reads.

Metadata calls: a get is one GetItem; a flat page of N keys one Query (plus one GetItem of
the bucket on the first page); a put in a new key about 10 requests (reads, the
transaction, and its stored-bytes job: file and manifest reads, one batch of counts and one
transaction per 48 distinct chunks, the job's delete).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dfs.meta.dynamo.store_namespace_list import NsListPart
from dfs.meta.dynamo.store_namespace_objects import NsObjectsPart
from dfs.meta.namespace import NamespaceStore


class NamespacePart(NsObjectsPart, NsListPart):
    """NamespaceStore on DynamoDB (see the module for its parts)."""


if TYPE_CHECKING:
    _: type[NamespaceStore] = NamespacePart
