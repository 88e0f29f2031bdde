"""Metadata stores, chosen by URL: ``open_metadata_store("sqlite:///…")`` or ``dynamodb://…``.

Backends are imported lazily so that a process that uses SQLite never imports boto3.
"""

from __future__ import annotations

from dfs.errors import ConfigError
from dfs.meta.base import MetadataStore


async def open_metadata_store(url: str) -> MetadataStore:
    """Open the store that ``url`` names; raises ConfigError for an unknown scheme."""
    scheme = url.partition("://")[0]
    if scheme == "sqlite":
        from dfs.meta.sqlite import SqliteMetadataStore

        return await SqliteMetadataStore.open(url)
    raise ConfigError("DFS_META_URL", url, f"unsupported metadata backend {scheme!r}")
