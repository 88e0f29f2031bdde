"""``DynamoMetadataStore``: the metadata port on DynamoDB, assembled from its parts.

Each part implements one area of ``dfs.meta.base.MetadataStore`` on the shared ``StoreCore``:
files (``store_files``), paged manifests (``store_pages``), commit and delete with their
reference counting (``store_commit``, ``store_delete``), files created complete
(``store_create``), verified content
(``store_verified``), chunks and their locations (``store_chunks``), the keyed items of
nodes, tenants, tokens, leases and stats (``store_registry``), S3 access keys
(``store_access_keys``), S3 multipart uploads (``store_multipart``) and bucket configuration
documents (``store_bucket_config``); the namespace port (buckets, keys, versions) is ``store_namespace``
and its parts. The package docstring shows the layout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from dfs.meta.base import MetadataStore
from dfs.meta.bucket_config import BucketConfigStore
from dfs.meta.dynamo.requests import open_client
from dfs.meta.dynamo.settings import settings_from_url
from dfs.meta.dynamo.store_access_keys import AccessKeysPart
from dfs.meta.dynamo.store_bucket_config import BucketConfigPart
from dfs.meta.dynamo.store_chunks import ChunksPart
from dfs.meta.dynamo.store_commit import CommitPart
from dfs.meta.dynamo.store_create import CreatePart
from dfs.meta.dynamo.store_delete import DeletePart
from dfs.meta.dynamo.store_files import FilesPart
from dfs.meta.dynamo.store_multipart import MultipartPart
from dfs.meta.dynamo.store_namespace import NamespacePart
from dfs.meta.dynamo.store_pages import PagesPart
from dfs.meta.dynamo.store_registry import RegistryPart
from dfs.meta.dynamo.store_usage_history import UsageHistoryPart
from dfs.meta.dynamo.store_verified import VerifiedPart
from dfs.meta.multipart import MultipartStore
from dfs.meta.namespace import NamespaceStore
from dfs.meta.usage_history import UsageHistoryStore


class DynamoMetadataStore(
    NamespacePart,
    CreatePart,
    FilesPart,
    PagesPart,
    VerifiedPart,
    CommitPart,
    DeletePart,
    ChunksPart,
    RegistryPart,
    AccessKeysPart,
    BucketConfigPart,
    MultipartPart,
    UsageHistoryPart,
):
    """MetadataStore on DynamoDB; see ``dfs.meta.dynamo`` for the layout.

    ``calls`` counts DynamoDB requests made by this store (``calls_by_operation`` per API
    operation), for benchmarks of metadata calls per GiB.
    """

    @classmethod
    async def open(cls, url: str, env: Mapping[str, str] | None = None) -> DynamoMetadataStore:
        env = os.environ if env is None else env
        settings = settings_from_url(url, env)
        store = cls(await open_client(settings, env), settings.tables)
        if settings.create_tables:
            await store.create_tables()
        return store


if TYPE_CHECKING:
    _: type[MetadataStore] = DynamoMetadataStore
    _ns: type[NamespaceStore] = DynamoMetadataStore
    _bc: type[BucketConfigStore] = DynamoMetadataStore
    _mp: type[MultipartStore] = DynamoMetadataStore
    _uh: type[UsageHistoryStore] = DynamoMetadataStore
