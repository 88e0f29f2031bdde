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
- ``store_namespace_create``: a PutObject's new file and its link, in one transaction when
  they fit (two writes and an intent item that GC resolves when they do not).
- ``store_namespace_list``: listing, search (what is indexed, what is a bounded scan) and
  usage reads.

Metadata calls (measured on moto): a get is one GetItem; a flat page of N keys or of N
one-version keys' versions one Query (plus the bucket's GetItem on the first page); a put of
an empty object 2 requests (one BatchGetItem of bucket and head, the transaction), of a new
file 7 (with the links' BatchGetItem and the stored-bytes job: the file's item, one
BatchGetItem of counts and one transaction per 48 distinct chunks, the job's delete); an
overwrite that releases the old file 17 (both jobs, and ``delete_file``).
``create_and_put_object`` of a new one-chunk file with its copy: 8 (the copy's BatchWriteItem
and UpdateItem, one BatchGetItem of bucket, head and refcounts, the one transaction, the
job's 4), 11 as two writes before; refused by a condition: the one BatchGetItem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dfs.meta.dynamo.store_namespace_create import NsCreatePart
from dfs.meta.dynamo.store_namespace_list import NsListPart
from dfs.meta.namespace import NamespaceStore


class NamespacePart(NsCreatePart, NsListPart):
    """NamespaceStore on DynamoDB (see the module for its parts)."""


if TYPE_CHECKING:
    _: type[NamespaceStore] = NamespacePart
