"""DynamoDB-only behaviour the shared contract cannot see: crash recovery of a big commit,
request counts, table creation, configuration and error translation."""

from __future__ import annotations

import itertools
import math
import os
import socket
from collections.abc import Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from dfs.errors import ConfigError, FileNotFound, Unavailable
from dfs.meta.base import FILE_COMPLETE, FILE_PENDING
from dfs.meta.dynamo import DynamoMetadataStore, codec
from dfs.meta.dynamo.requests import TX_MAX, Requests, make_client
from dfs.meta.dynamo.settings import settings_from_url
from dfs.meta.dynamo.store_commit import CHUNKS_PER_TX
from dfs.meta.dynamo.store_core import PAGE_ENTRIES
from tests.contract.test_metadata_pages import _pages as paged_entries
from tests.contract.test_metadata_pages import _start as paged_start
from tests.contract.test_metadata_store import cid, new_file

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture
def store(dynamo_store: DynamoMetadataStore) -> DynamoMetadataStore:
    return dynamo_store  # conftest.py's: a store on moto, tables of its own


async def test_commit_resumes_after_a_crash_without_double_counting(
    store: DynamoMetadataStore,
) -> None:
    rec, manifest = new_file("big", [(cid(f"c{i}"), 3) for i in range(200)])
    await store.create_file(rec, manifest)
    item = await store._file_item(rec.file_id, ("mid",))
    refs = codec.refs_of(manifest)
    # A commit that died after claiming the file and applying its first batch:
    assert await store._rq.run(store._claim, rec.file_id) == codec.FILE_COMMITTING
    await store._rq.run(
        store._commit_batch, item["mid"]["S"], 0, refs[:CHUNKS_PER_TX], 1.0, "t1", rec.file_id
    )
    assert (await store.get_file(rec.file_id)).state == FILE_PENDING
    assert (await store.commit_file(rec.file_id, 2.0)).state == FILE_COMPLETE
    # Replaying a batch after completion changes nothing either.
    await store._rq.run(
        store._commit_batch, item["mid"]["S"], 0, refs[:CHUNKS_PER_TX], 3.0, "t1", rec.file_id
    )
    stats = await store.get_stats()
    assert (stats.total_files, stats.unique_chunks, stats.stored_bytes) == (1, 200, 600)
    assert stats.duplicates_avoided == 0
    chunks = await store.get_chunks([r.chunk_id for r in refs])
    assert {c.refcount for c in chunks.values()} == {1}


async def test_gc_finishes_and_deletes_a_commit_a_crash_left_half_way(
    store: DynamoMetadataStore,
) -> None:
    """An API process killed inside a big file's commit (claimed, one batch applied): no
    finalize will come back for it, and it must not stay "committing" for ever with its
    applied batches' references counted. GC's sweep of stale uploads finishes the commit
    (its batches are idempotent) and deletes the file: every reference taken back."""
    rec, manifest = new_file("big", [(cid(f"s{i}"), 3) for i in range(200)])
    await store.create_file(rec, manifest)  # created_at 1.0 (new_file's)
    item = await store._file_item(rec.file_id, ("mid",))
    refs = codec.refs_of(manifest)
    assert await store._rq.run(store._claim, rec.file_id) == codec.FILE_COMMITTING
    await store._rq.run(
        store._commit_batch, item["mid"]["S"], 0, refs[:CHUNKS_PER_TX], 11.0, "t1", rec.file_id
    )
    stale = await store.stale_pending_files(20.0, limit=10)
    assert [f.file_id for f in stale] == [rec.file_id]
    assert not await store.delete_pending_file(rec.file_id, 0.5, 30.0)  # not old enough
    assert not await store.delete_pending_file(rec.file_id, 20.0)  # no ``now``: as before
    assert await store.delete_pending_file(rec.file_id, 20.0, 30.0)
    with pytest.raises(FileNotFound):
        await store.get_file(rec.file_id)
    chunks = await store.get_chunks([r.chunk_id for r in refs])
    assert {c.refcount for c in chunks.values()} == {0}
    stats = await store.get_stats()
    assert (stats.total_files, stats.logical_bytes) == (0, 0)
    assert await store.find_file_by_sha256("t1", rec.sha256) is None


async def test_gc_finishes_a_delete_a_crash_left_half_way(store: DynamoMetadataStore) -> None:
    rec, manifest = new_file("big", [(cid(f"d{i}"), 3) for i in range(200)])
    await store.create_file(rec, manifest)
    await store.commit_file(rec.file_id, 11.0)
    item = await store._file_item(rec.file_id, codec.FILE_WITH_MANIFEST_ATTRS)
    # a delete that died after making the file invisible (complete -> deleting)
    await store._rq.run(store._claim_delete, codec.file_record(item))
    assert await store.delete_pending_file(rec.file_id, 20.0, 30.0)
    with pytest.raises(FileNotFound):
        await store.get_file(rec.file_id)
    chunks = await store.get_chunks([r.chunk_id for r in codec.refs_of(manifest)])
    assert {c.refcount for c in chunks.values()} == {0}


@pytest.mark.parametrize("distinct", [3, 300])
async def test_requests_per_create_and_commit(store: DynamoMetadataStore, distinct: int) -> None:
    rec, manifest = new_file("f", [(cid(f"r{i}"), 1 << 20) for i in range(distinct)])
    before = store.calls
    await store.create_file(rec, manifest)
    await store.commit_file(rec.file_id, 1.0)
    calls = store.calls - before
    if distinct <= CHUNKS_PER_TX:
        # PutItem; GetItem, BatchGetItem (expectations), TransactWriteItems
        assert calls == 4
    else:
        batches = math.ceil(distinct / CHUNKS_PER_TX)
        pages = math.ceil(distinct / PAGE_ENTRIES)
        # BatchWriteItem + PutItem; GetItem, BatchGetItem (pages), claim,
        # per batch BatchGetItem + TransactWriteItems, final TransactWriteItems
        assert calls == math.ceil(pages / 25) + 1 + 1 + math.ceil(pages / 100) + 1 + 2 * batches + 1


async def test_create_tables_is_idempotent_and_enables_ttl(
    store: DynamoMetadataStore,
) -> None:
    await store.create_tables()  # the fixture created them already
    client = store._rq.client
    ttl = client.describe_time_to_live(TableName=store.tables["nodes"])["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    files = client.describe_table(TableName=store.tables["files"])["Table"]
    assert [g["IndexName"] for g in files["GlobalSecondaryIndexes"]] == ["by-tenant"]
    locs = client.describe_table(TableName=store.tables["locations"])["Table"]
    assert [g["IndexName"] for g in locs["GlobalSecondaryIndexes"]] == ["by-node"]


def test_settings_from_url_and_env() -> None:
    env = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://x:1", "DFS_FILES_TABLE": "files1"}
    s = settings_from_url("dynamodb://?table_prefix=p-", env)
    assert (s.region, s.endpoint_url) == ("eu-west-1", "http://x:1")
    assert s.tables["files"] == "p-files1"
    assert s.tables["chunks"] == "p-dfs-chunk-metadata"
    assert s.tables["nodes"] == "p-dfs-node-registry"
    s = settings_from_url("dynamodb://?region=us-east-2&endpoint_url=http://y:2", env)
    assert (s.region, s.endpoint_url) == ("us-east-2", "http://y:2")
    with pytest.raises(ConfigError, match="unknown parameter"):
        settings_from_url("dynamodb://?regoin=x", env)
    with pytest.raises(ConfigError, match="CHUNK_METADATA_TABLE"):
        settings_from_url("dynamodb://", {"CHUNK_METADATA_TABLE": "bad name!"})


async def test_unreachable_endpoint_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **ENV}
    settings = settings_from_url(f"dynamodb://?endpoint_url=http://127.0.0.1:{port}", env)
    store = DynamoMetadataStore(make_client(settings, env), settings.tables, attempts=2)
    try:
        with pytest.raises(Unavailable):
            await store.get_stats()
    finally:
        await store.close()


@pytest.mark.parametrize("distinct", [CHUNKS_PER_TX, CHUNKS_PER_TX + 1])
async def test_commit_and_delete_transactions_fit_the_limit(
    store: DynamoMetadataStore, distinct: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The widest transactions (a whole commit, a whole delete that re-points the content
    entry) stay within TransactWriteItems' 100 actions at CHUNKS_PER_TX distinct chunks,
    and one more chunk takes the batched path."""
    sizes: list[int] = []
    transact = store._rq.transact

    def counting(actions: list[dict[str, object]], token: str | None = None) -> None:
        sizes.append(len(actions))
        transact(actions, token)

    monkeypatch.setattr(store._rq, "transact", counting)
    content = [(cid(f"tx{distinct}-{i}"), 3) for i in range(distinct)]
    a, ma = new_file("tx", content)
    b, mb = new_file("tx", content)  # same content: deleting a re-points the entry to b
    for rec, m in ((a, ma), (b, mb)):
        await store.create_file(rec, m)
        await store.commit_file(rec.file_id, 1.0)
    await store.delete_file(a.file_id, "t1", 2.0)
    found = await store.find_file_by_sha256("t1", a.sha256)
    assert found is not None
    assert found.file_id == b.file_id
    await store.delete_file(b.file_id, "t1", 3.0)
    assert await store.find_file_by_sha256("t1", a.sha256) is None
    assert max(sizes) <= TX_MAX
    if distinct == CHUNKS_PER_TX:
        # a whole delete (its link check included) fills it; a whole commit takes 2n + 3
        assert max(sizes) == 2 * distinct + 4 == TX_MAX
    else:
        # the biggest batch: the first 48 chunks, its marker, the file check, a counter
        assert max(sizes) == 2 * distinct + 1 == TX_MAX - 1
    stats = await store.get_stats()
    assert (stats.total_files, stats.stored_bytes, stats.unique_chunks) == (0, 0, 0)
    chunks = await store.get_chunks([c for c, _ in content])
    assert {c.refcount for c in chunks.values()} == {0}


class _Events:
    def register(self, *_: object) -> None:
        pass


class _Throttled:
    """A client whose BatchWriteItem never processes anything, as under heavy throttling."""

    def __init__(self) -> None:
        self.meta = type("Meta", (), {"events": _Events()})()
        self.requests = 0

    def batch_write_item(self, RequestItems: dict[str, object]) -> dict[str, object]:
        self.requests += 1
        return {"UnprocessedItems": RequestItems}

    def close(self) -> None:
        pass


async def test_a_batch_call_is_bounded_by_one_retry_budget() -> None:
    """Unprocessed items are retried by the same policy as throttling: at most ``attempts``
    requests per batch call (not attempts squared), then Unavailable."""
    client = _Throttled()
    rq = Requests(client, attempts=3)
    try:
        put = {"PutRequest": {"Item": {"k": {"S": "v"}}}}
        with pytest.raises(Unavailable, match="unprocessed"):
            await rq.run(rq.batch_write, "t", [put])
        assert client.requests == 3
    finally:
        await rq.close()


async def test_a_node_sequence_item_of_before_boot_numbers_counts_as_none(
    store: DynamoMetadataStore,
) -> None:
    """Items written when boots were nonces (a string ``boot``) do not block the node's first
    numbered heartbeat after an upgrade, which drops the old attribute."""
    key = codec.auth_key("node_seq", "n1")
    item = {**key, "boot": {"S": "f" * 32}, "seq": {"N": "99"}}
    await store._rq.run(
        lambda: store._rq.call("put_item", TableName=store.tables["auth"], Item=item)
    )
    assert await store.advance_node_sequence("n1", 1_700_000_000_000, 1)
    got = await store._rq.run(
        lambda: store._rq.call(
            "get_item", TableName=store.tables["auth"], Key=key, ConsistentRead=True
        )
    )
    assert "boot" not in got["Item"]
    assert got["Item"]["boot_no"] == {"N": "1700000000000"}
    assert not await store.advance_node_sequence("n1", 1_700_000_000_000, 1)


def _client_error(code: str, reasons: Sequence[str] = ()) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": code}}
    if reasons:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


class _Answers:
    """A client whose TransactWriteItems answers from a script (an exception, or success),
    recording the ClientRequestToken of each request."""

    def __init__(self, *answers: Exception | None) -> None:
        self.meta = type("Meta", (), {"events": _Events()})()
        self.answers = list(answers)
        self.tokens: list[str | None] = []

    def transact_write_items(self, **params: Any) -> dict[str, object]:
        self.tokens.append(params.get("ClientRequestToken"))
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return {}

    def close(self) -> None:
        pass


CONFLICT = ("None", "TransactionConflict")


@pytest.mark.parametrize(
    ("answers", "same"),
    [
        # refused, nothing applied: the next attempt is a new request with a new token, so
        # DynamoDB cannot answer it with the first one's cancellation
        ([_client_error("TransactionCanceledException", CONFLICT)], [False]),
        ([_client_error("ThrottlingException")], [False]),
        # no answer, or a 5xx: it may have been applied; only its token can tell
        ([ReadTimeoutError(endpoint_url="dynamodb")], [True]),
        ([_client_error("InternalServerError")], [True]),
        ([_client_error("TransactionInProgressException")], [True]),
        # once an attempt's outcome is open, no later refusal may change the token
        (
            [
                _client_error("TransactionCanceledException", CONFLICT),
                ReadTimeoutError(endpoint_url="dynamodb"),
                _client_error("TransactionCanceledException", CONFLICT),
            ],
            [False, True, True],
        ),
    ],
)
async def test_a_retry_keeps_its_token_only_while_an_attempt_may_have_applied(
    answers: list[Exception], same: list[bool]
) -> None:
    client = _Answers(*answers)
    rq = Requests(client, attempts=len(answers) + 1)
    try:
        await rq.run(rq.transact, [{"Put": {}}], "first-token")
    finally:
        await rq.close()
    tokens = client.tokens
    assert len(tokens) == len(answers) + 1
    assert tokens[0] == "first-token"
    assert [b == a for a, b in itertools.pairwise(tokens)] == same
    assert None not in tokens
    assert len(set(tokens)) == 1 + same.count(False)


async def test_a_transaction_without_a_token_is_sent_without_one() -> None:
    client = _Answers(_client_error("TransactionCanceledException", CONFLICT))
    rq = Requests(client, attempts=2)
    try:
        await rq.run(rq.transact, [{"Put": {}}])
    finally:
        await rq.close()
    assert client.tokens == [None, None]


async def test_a_page_appended_while_the_seal_checks_is_not_the_files(
    store: DynamoMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB seals in two steps (read the pages, then write the seal): a page appended
    between them is not one of the pages it checked, and no read of the file counts it."""
    meta = store  # SQLite seals in one transaction: no page can come between
    rec = await paged_start(meta)
    [page] = paged_entries([[10, 20]])
    await meta.append_manifest_page(rec.file_id, 0, page)
    await meta.mark_page_proven(rec.file_id, 0)
    check = meta._check_pages
    [extra] = paged_entries([[40]], first=100)

    def check_then_append(file_id: str, mid: str, size: int) -> tuple[int, int]:
        checked = check(file_id, mid, size)
        fmt, data = codec.encode_entries(extra)
        key = codec.appended_page_key(mid, 1)
        item = {**key, "f": {"S": fmt}, "e": {"B": data}}
        meta._rq.call("put_item", TableName=meta.tables["manifests"], Item=item)
        return checked

    monkeypatch.setattr(meta, "_check_pages", check_then_append)
    await meta.seal_file(rec.file_id, 30, cid("sealed"))
    done = await meta.commit_file(rec.file_id, 5.0)
    assert (done.size, done.chunk_count) == (30, 2)
    assert await meta.get_manifest(rec.file_id) == page
    assert (await meta.get_manifests([rec.file_id]))[rec.file_id] == page
