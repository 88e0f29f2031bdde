"""The bucket-configuration port (``dfs.meta.bucket_config``) on both backends (the ``meta``
fixture: SQLite and DynamoDB on moto's server)."""

from __future__ import annotations

from dfs.meta.base import MetadataStore
from dfs.meta.bucket_config import KIND_CORS, KIND_TAGGING, bucket_config_store, generation_of


async def test_documents_are_kept_per_bucket_kind_and_generation(meta: MetadataStore) -> None:
    store = bucket_config_store(meta)
    assert store is not None
    gen, later = generation_of(1700000000.123456), generation_of(1700000001.5)
    assert await store.get_bucket_config("b1", gen, KIND_CORS) is None
    await store.put_bucket_config("b1", gen, KIND_CORS, '{"rules": [1]}')
    await store.put_bucket_config("b2", gen, KIND_CORS, "other")
    assert await store.get_bucket_config("b1", gen, KIND_CORS) == '{"rules": [1]}'
    assert await store.get_bucket_config("b1", gen, "website") is None
    assert await store.get_bucket_config("b1", later, KIND_CORS) is None  # a newer bucket
    await store.put_bucket_config("b1", gen, KIND_CORS, "replaced " + "x" * 60_000)
    assert await store.get_bucket_config("b1", gen, KIND_CORS) == "replaced " + "x" * 60_000
    await store.delete_bucket_config("b1", KIND_CORS)
    await store.delete_bucket_config("b1", KIND_CORS)  # nothing there: no error
    assert await store.get_bucket_config("b1", gen, KIND_CORS) is None
    assert await store.get_bucket_config("b2", gen, KIND_CORS) == "other"
    await store.put_bucket_config("b2", later, KIND_CORS, "new bucket")
    assert await store.get_bucket_config("b2", gen, KIND_CORS) is None
    assert await store.get_bucket_config("b2", later, KIND_CORS) == "new bucket"


async def test_bucket_tags_are_a_kind_of_their_own(meta: MetadataStore) -> None:
    """Bucket tags (``KIND_TAGGING``) beside the CORS rules of the same bucket: neither
    replaces nor deletes the other, and a bucket created again starts untagged."""
    store = bucket_config_store(meta)
    assert store is not None
    gen, later = generation_of(1000.25), generation_of(2000.5)
    tags = '[["team", "storage"], ["env", "prod"]]'
    await store.put_bucket_config("tb", gen, KIND_CORS, "rules")
    await store.put_bucket_config("tb", gen, KIND_TAGGING, tags)
    assert await store.get_bucket_config("tb", gen, KIND_TAGGING) == tags
    assert await store.get_bucket_config("tb", gen, KIND_CORS) == "rules"
    assert await store.get_bucket_config("tb", later, KIND_TAGGING) is None
    await store.delete_bucket_config("tb", KIND_TAGGING)
    assert await store.get_bucket_config("tb", gen, KIND_TAGGING) is None
    assert await store.get_bucket_config("tb", gen, KIND_CORS) == "rules"
