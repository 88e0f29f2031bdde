"""Backends the contract suites run against.

``meta`` is parametrized over SQLite and DynamoDB (moto's server mode, started once per session
as a subprocess on loopback; every test gets its own tables through a unique table prefix).
When ``DFS_TEST_DYNAMODB_URL`` is set (an endpoint such as ``http://127.0.0.1:8000``, or a full
``dynamodb://?..`` URL), the suite also runs against it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from dfs.meta import open_metadata_store
from dfs.meta.base import FILE_COMPLETE, FileRecord, MetadataStore
from dfs.meta.dynamo import DynamoMetadataStore
from dfs.meta.namespace import NamespaceStore
from dfs.meta.sqlite import SqliteMetadataStore
from dfs.meta.sqlite_codec import pack_file_id
from dfs.meta.sqlite_manifests import insert_file
from tests.conftest import DYNAMODB_ENV

EXTERNAL_DYNAMODB = os.environ.get("DFS_TEST_DYNAMODB_URL", "")
BACKENDS = ["sqlite", "dynamodb"] + (["dynamodb-external"] if EXTERNAL_DYNAMODB else [])


def dynamodb_url(endpoint: str) -> str:
    prefix = f"t{uuid.uuid4().hex[:12]}-"
    if endpoint.startswith("dynamodb://"):
        sep = "&" if "?" in endpoint else "?"
        return f"{endpoint}{sep}table_prefix={prefix}&create_tables=1"
    return f"dynamodb://?endpoint_url={endpoint}&table_prefix={prefix}&create_tables=1"


@pytest.fixture
async def dynamo_store(moto_endpoint: str) -> AsyncIterator[DynamoMetadataStore]:
    """A DynamoDB store on moto, with tables of its own: tests of that backend alone."""
    store = await open_metadata_store(dynamodb_url(moto_endpoint), {**os.environ, **DYNAMODB_ENV})
    assert isinstance(store, DynamoMetadataStore)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=BACKENDS)
async def meta(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetadataStore]:
    if request.param == "sqlite":
        store = await open_metadata_store(f"sqlite://{tmp_path / 'meta.db'}")
    else:
        endpoint = (
            EXTERNAL_DYNAMODB
            if request.param == "dynamodb-external"
            else request.getfixturevalue("moto_endpoint")
        )
        env = {**os.environ, **DYNAMODB_ENV} if request.param == "dynamodb" else dict(os.environ)
        store = await open_metadata_store(dynamodb_url(endpoint), env)
    try:
        yield store
    finally:
        if request.param == "dynamodb-external":
            await store.delete_tables()  # type: ignore[attr-defined]
        await store.close()


SeedFiles = Callable[[MetadataStore, Sequence[FileRecord]], Awaitable[None]]


async def _seed_complete_files(store: MetadataStore, recs: Sequence[FileRecord]) -> None:
    """Store complete files with empty manifests in bulk, bypassing create/commit.

    Backend-specific on purpose: it lets listing tests use 10,000 files without 20,000
    round trips to moto (a few hundred ops/s).
    """
    if isinstance(store, SqliteMetadataStore):

        def op() -> None:
            with store._tx() as db:
                for r in recs:
                    insert_file(db, store._labels, r, [])
                db.executemany(
                    "UPDATE files SET state = 1 WHERE file_id = ?",
                    [(pack_file_id(r.file_id),) for r in recs],
                )

        await store._run(op)
        return
    from dfs.meta.dynamo import DynamoMetadataStore, codec

    assert isinstance(store, DynamoMetadataStore)
    puts = []
    for r in recs:
        item = codec.file_item(r, FILE_COMPLETE, f"{r.file_id}/seed", 0)
        fmt, data = codec.encode_entries([])
        item.update(pages={"N": "0"}, mf={"S": fmt}, m={"B": data})
        puts.append({"PutRequest": {"Item": item}})
    await store._rq.write_many(store.tables["files"], puts)


@pytest.fixture
def seed_files() -> SeedFiles:
    return _seed_complete_files


class Store(MetadataStore, NamespaceStore, Protocol):
    """Both ports on one object, as each backend provides them."""


@pytest.fixture
def ns(meta: MetadataStore) -> Store:
    """``meta`` seen through both ports: the namespace suites' store."""
    return meta  # type: ignore[return-value]
