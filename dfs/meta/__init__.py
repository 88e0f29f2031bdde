"""Metadata stores, chosen by URL: ``open_metadata_store("sqlite:///…")`` or ``dynamodb://…``.

Backends are imported lazily so that a process that uses SQLite never imports boto3.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dfs.errors import ConfigError
from dfs.meta.base import MetadataStore


async def open_metadata_store(url: str, env: Mapping[str, str] | None = None) -> MetadataStore:
    """Open the store that ``url`` names; raises ConfigError for an unknown scheme.

    ``env`` (default ``os.environ``) supplies backend settings the URL leaves out, such as
    ``AWS_REGION`` and the DynamoDB table names.
    """
    scheme = url.partition("://")[0]
    if scheme == "sqlite":
        from dfs.meta.sqlite import SqliteMetadataStore

        return await SqliteMetadataStore.open(url)
    if scheme == "dynamodb":
        from dfs.meta.dynamo import DynamoMetadataStore

        return await DynamoMetadataStore.open(url, os.environ if env is None else env)
    raise ConfigError("DFS_META_URL", url, f"unsupported metadata backend {scheme!r}")
