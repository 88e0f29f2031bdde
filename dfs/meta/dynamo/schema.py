"""The DynamoDB schema of dfs, as data: the one place that names tables, keys and indexes.

``DynamoMetadataStore.create_tables`` creates exactly what ``TABLES`` lists, and
``infra/terraform`` must declare the same (``python -m dfs.meta.dynamo`` prints it as
JSON for that cross-check). Shapes follow the DynamoDB ``CreateTable`` API. Each table's name is
``table_prefix + env[ENV] or DEFAULT``.

| logical   | env var (default name)                  | key               | index / TTL         |
|-----------|-----------------------------------------|-------------------|---------------------|
| nodes     | NODE_REGISTRY_TABLE (dfs-node-registry) | node_id           | TTL expires_at      |
| chunks    | CHUNK_METADATA_TABLE (dfs-chunk-metadata) | chunk_id        | -                   |
| locations | DFS_CHUNK_LOCATIONS_TABLE (dfs-chunk-locations) | chunk_id, node_id | by-node     |
| files     | DFS_FILES_TABLE (dfs-files)             | file_id           | by-tenant (sparse)  |
| manifests | DFS_MANIFESTS_TABLE (dfs-manifests)     | mid, part         | -                   |
| counters  | DFS_COUNTERS_TABLE (dfs-counters)       | counter           | -                   |
| tenant_chunks | DFS_TENANT_CHUNKS_TABLE (dfs-tenant-chunks) | tenant, chunk_id | -              |
| auth      | DFS_AUTH_TABLE (dfs-auth)               | kind, id          | -                   |
| file_hashes | DFS_FILE_HASHES_TABLE (dfs-file-hashes) | tenant, sha256  | -                   |
| namespace | DFS_NAMESPACE_TABLE (dfs-namespace)     | p, s              | TTL expires         |
| objects   | DFS_OBJECTS_TABLE (dfs-objects)         | p, s              | -                   |

The two namespace tables (buckets, keys, versions; ``store_namespace``) hold several kinds
of items each, told apart by the prefix of their partition key ``p``; their layout is in
``store_namespace_codec``.

Pure data: no imports beyond the standard library, no boto3.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

BILLING_MODE: Final = "PAY_PER_REQUEST"

# Attributes the by-tenant index copies, so list_files needs no second read (the inline
# manifest ``m`` is deliberately left out).
_FILE_RECORD_ATTRS: Final = [
    "tenant",
    "name",
    "size",
    "sha256",
    "chunker",
    "state",
    "created_at",
    "chunk_count",
]

TABLES: Final[dict[str, dict[str, Any]]] = {
    "nodes": {
        "env": "NODE_REGISTRY_TABLE",
        "default": "dfs-node-registry",
        "KeySchema": [{"AttributeName": "node_id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "node_id", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [],
        "ttl_attribute": "expires_at",
    },
    "chunks": {
        "env": "CHUNK_METADATA_TABLE",
        "default": "dfs-chunk-metadata",
        "KeySchema": [{"AttributeName": "chunk_id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "chunk_id", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [],
        "ttl_attribute": None,
    },
    "locations": {
        "env": "DFS_CHUNK_LOCATIONS_TABLE",
        "default": "dfs-chunk-locations",
        "KeySchema": [
            {"AttributeName": "chunk_id", "KeyType": "HASH"},
            {"AttributeName": "node_id", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "chunk_id", "AttributeType": "S"},
            {"AttributeName": "node_id", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "by-node",
                "KeySchema": [
                    {"AttributeName": "node_id", "KeyType": "HASH"},
                    {"AttributeName": "chunk_id", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "ttl_attribute": None,
    },
    "files": {
        "env": "DFS_FILES_TABLE",
        "default": "dfs-files",
        "KeySchema": [{"AttributeName": "file_id", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": "file_id", "AttributeType": "S"},
            {"AttributeName": "listed_tenant", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "by-tenant",
                "KeySchema": [
                    {"AttributeName": "listed_tenant", "KeyType": "HASH"},
                    {"AttributeName": "file_id", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": _FILE_RECORD_ATTRS,
                },
            }
        ],
        "ttl_attribute": None,
    },
    "manifests": {
        "env": "DFS_MANIFESTS_TABLE",
        "default": "dfs-manifests",
        "KeySchema": [
            {"AttributeName": "mid", "KeyType": "HASH"},
            {"AttributeName": "part", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "mid", "AttributeType": "S"},
            {"AttributeName": "part", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [],
        "ttl_attribute": None,
    },
    "tenant_chunks": {
        "env": "DFS_TENANT_CHUNKS_TABLE",
        "default": "dfs-tenant-chunks",
        "KeySchema": [
            {"AttributeName": "tenant", "KeyType": "HASH"},
            {"AttributeName": "chunk_id", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "tenant", "AttributeType": "S"},
            {"AttributeName": "chunk_id", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [],
        "ttl_attribute": None,
    },
    "auth": {
        # kind "tenant" (id = tenant name), kind "token" (id = sha256 of the token) and kind
        # "node_seq" (id = node id: the last accepted heartbeat's boot and seq, see
        # MetadataStore.advance_node_sequence)
        "env": "DFS_AUTH_TABLE",
        "default": "dfs-auth",
        "KeySchema": [
            {"AttributeName": "kind", "KeyType": "HASH"},
            {"AttributeName": "id", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "kind", "AttributeType": "S"},
            {"AttributeName": "id", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [],
        "ttl_attribute": None,
    },
    "file_hashes": {
        # (tenant, whole-file sha256) -> file_id of the first complete file with that content;
        # written in commit_file's transaction, read with strong consistency (no GSI lag)
        "env": "DFS_FILE_HASHES_TABLE",
        "default": "dfs-file-hashes",
        "KeySchema": [
            {"AttributeName": "tenant", "KeyType": "HASH"},
            {"AttributeName": "sha256", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "tenant", "AttributeType": "S"},
            {"AttributeName": "sha256", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [],
        "ttl_attribute": None,
    },
    "namespace": {
        # buckets, their by-tenant and by-grantee index items, usage counters, file links,
        # pending accounting jobs and per-scope chunk counts (store_namespace_codec); S3
        # multipart uploads (store_multipart)
        "env": "DFS_NAMESPACE_TABLE",
        "default": "dfs-namespace",
        "KeySchema": [
            {"AttributeName": "p", "KeyType": "HASH"},
            {"AttributeName": "s", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "p", "AttributeType": "S"},
            {"AttributeName": "s", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [],
        "ttl_attribute": "expires",  # jobs' done marks (store_namespace_jobs) expire
    },
    "objects": {
        # per bucket: key heads and listed (live) keys in key order, versions per key newest
        # first, and sparse search index items by tag and content type
        "env": "DFS_OBJECTS_TABLE",
        "default": "dfs-objects",
        "KeySchema": [
            {"AttributeName": "p", "KeyType": "HASH"},
            {"AttributeName": "s", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "p", "AttributeType": "S"},
            {"AttributeName": "s", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [],
        "ttl_attribute": None,
    },
    "counters": {
        "env": "DFS_COUNTERS_TABLE",
        "default": "dfs-counters",
        "KeySchema": [{"AttributeName": "counter", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "counter", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [],
        "ttl_attribute": None,
    },
}


def table_names(env: Mapping[str, str], prefix: str = "") -> dict[str, str]:
    """Logical table -> actual name, from ``env`` (a mapping) and an optional prefix."""
    return {key: prefix + (env.get(t["env"]) or t["default"]) for key, t in TABLES.items()}


def schema_json() -> str:
    """The schema as JSON, for cross-checks by hand (``python -m dfs.meta.dynamo``)."""
    return json.dumps({"billing_mode": BILLING_MODE, "tables": TABLES}, indent=2)
