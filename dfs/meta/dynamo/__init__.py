"""The metadata store on DynamoDB (boto3): the only package of dfs that imports boto3/botocore.

Modules, each owning one thing:

- ``schema``: tables, keys and indexes, as data (Terraform declares the same).
- ``settings``: the ``dynamodb://`` URL -> region, endpoint, table names.
- ``requests``: the request layer: the boto3 client, its thread pool, ONE retry policy for
  every request (batch calls included), call counting, botocore error translation.
- ``tables``: table creation and TTL, through the request layer.
- ``codec``: how records and manifests are laid out as items.
- ``store`` (``DynamoMetadataStore``) and its parts: ``store_core`` (what they share),
  ``store_files``, ``store_refcounts`` (the conditional refcount transactions) with
  ``store_commit`` and ``store_delete`` on top (and ``store_verified`` on both), ``store_chunks``,
  ``store_registry``; and the namespace port (buckets, keys, versions, usage):
  ``store_namespace`` and its parts ``store_namespace_{codec,buckets,write,jobs,objects,create,list}``.

How the records map onto the tables:

| table     | item               | attributes                                             |
|-----------|--------------------|--------------------------------------------------------|
| nodes     | node_id            | NodeRecord fields; ``expires_at`` is the TTL attribute |
| chunks    | chunk_id           | size, refcount, created_at, nodes (set: the copies),   |
|           |                    | unref_at; or only gone (a collected chunk's tombstone) |
| locations | (chunk_id, node_id)| size, created_at; only for the by-node index (repair)  |
| files     | file_id            | FileRecord fields, mid, pages, inline manifest m + mf; |
|           |                    | listed_tenant (by-tenant index key) once complete;     |
|           |                    | unl while a PutObject's or copy's file is not linked   |
|           |                    | (or one committed ``for_object``, until its link)      |
| manifests | (mid, "p000123")   | a page of PAGE_ENTRIES entries: e (bytes), f (format)  |
|           | (mid, "c000123")   | commit marker: batch 123 of the refcounts is applied   |
| counters  | "stats#07"         | one of COUNTER_SHARDS shards of the Stats fields       |
| counters  | "lease#repair"     | a lease: owner, expires_at, info                       |
| file_hashes | (tenant, sha256) | file_id of the first complete file with that content,  |
|             |                  | files (set: up to 200 complete ones), v (changes)     |
| namespace | (p, s)             | buckets, index items, usage, file links, pending jobs, |
|           |                    | intents of PutObjects' files not linked yet,          |
|           |                    | per-tenant/bucket chunk counts (store_namespace_codec) |
| objects   | (p, s)             | key heads, listed keys, versions, search index items   |

A manifest lives under a fresh ``mid`` per create_file: pages are written first, then the file
item is put with ``attribute_not_exists``; a losing create never touches the winner's pages,
and readers never see a file without its manifest. Up to ``INLINE_ENTRIES`` entries ride in
the file item itself. Entries are 48 bytes (offset, size, sha256 as binary). Why commit and
delete keep every counter exact under concurrency: ``store_refcounts``. Why the locations
are shaped as they are: ``store_chunks``.
"""

from __future__ import annotations

from dfs.meta.dynamo.store import DynamoMetadataStore

__all__ = ["DynamoMetadataStore"]
