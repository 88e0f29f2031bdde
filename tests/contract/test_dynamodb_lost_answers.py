"""A DynamoDB transaction applied whose answer was lost (a read timeout after the write: the
retry policy sends it again) must answer as the write it was, not fail on its own result.

DynamoDB answers a resend with the same ClientRequestToken as done for 10 minutes; moto
ignores the token and runs the resend again, as DynamoDB does past that window. Both are
played here: ``honoured`` keeps, in front of moto, what DynamoDB documents (a token whose
transaction was applied is answered as done without running it again); ``ignored`` is
moto alone, where a write recognises its own result where it can.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from dfs.errors import FileNotFound, UploadNotFound
from dfs.meta.base import Location
from dfs.meta.dynamo import DynamoMetadataStore
from dfs.meta.multipart import (
    UPLOAD_COMPLETING,
    UPLOAD_DONE,
    UPLOAD_OPEN,
    MultipartUpload,
    UploadPart,
    new_upload_id,
)
from dfs.meta.namespace import BucketRecord
from tests.contract.test_metadata_store import cid, new_file


class LoseAnswers:
    """In front of the client's TransactWriteItems: ``lose()`` makes the next one be
    applied and its answer lost; ``honour_tokens`` plays DynamoDB's idempotency."""

    def __init__(self, store: DynamoMetadataStore, honour_tokens: bool) -> None:
        self.send = store._rq.client.transact_write_items
        self.honour = honour_tokens
        self.applied: set[str] = set()
        self.armed = False
        self.lost = 0
        store._rq.client.transact_write_items = self

    def lose(self) -> None:
        self.armed = True

    def __call__(self, **params: Any) -> Any:
        token = params.get("ClientRequestToken")
        if self.honour and token is not None and token in self.applied:
            return {}  # DynamoDB: the same token again, applied already: answered as done
        answer = self.send(**params)
        if token is not None:
            self.applied.add(token)
        if self.armed:
            self.armed = False
            self.lost += 1
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        return answer


@pytest.fixture
def store(dynamo_store: DynamoMetadataStore) -> DynamoMetadataStore:
    return dynamo_store  # conftest.py's: a store on moto, tables of its own


@pytest.mark.parametrize("honoured", [True, False], ids=["honoured", "ignored"])
async def test_create_bucket(store: DynamoMetadataStore, honoured: bool) -> None:
    net = LoseAnswers(store, honoured)
    net.lose()
    await store.create_bucket(BucketRecord("b1", "t1", 1.0))
    assert net.lost == 1
    assert (await store.get_bucket("b1")).tenant == "t1"
    assert [b.name for b in await store.list_buckets("t1")] == ["b1"]


@pytest.mark.parametrize("honoured", [True, False], ids=["honoured", "ignored"])
async def test_multipart_upload_and_a_replaced_part(
    store: DynamoMetadataStore, honoured: bool
) -> None:
    """The create answers done; a part put again answers the file id it replaced (the
    caller releases that one), never its own new file id."""
    net = LoseAnswers(store, honoured)
    u = MultipartUpload(new_upload_id(5.0), "t1", "b1", "k", 5.0, "", ())
    net.lose()
    await store.create_multipart_upload(u)
    assert await store.get_multipart_upload(u.upload_id) == u
    assert [x.upload_id for x in await store.list_multipart_uploads("b1")] == [u.upload_id]
    await store.put_upload_part(u.upload_id, UploadPart(1, "old-file", 5, "e" * 32, 6.0))
    net.lose()
    replaced = await store.put_upload_part(u.upload_id, UploadPart(1, "new-file", 5, "f" * 32, 7.0))
    assert net.lost == 2
    assert replaced == "old-file"
    assert [p.file_id for p in await store.list_upload_parts(u.upload_id)] == ["new-file"]


async def test_small_file_delete(store: DynamoMetadataStore) -> None:
    """A small file's delete (one transaction with its references) answers the deleted
    record; the references are dropped once."""
    net = LoseAnswers(store, honour_tokens=True)
    content = [(cid(("lost", i)), 10) for i in range(3)]
    keep, mk = new_file("keep", content)
    gone, mg = new_file("gone", content)
    for rec, m in ((keep, mk), (gone, mg)):
        await store.create_file(rec, m)
        await store.commit_file(rec.file_id, 2.0)
    net.lose()
    assert (await store.delete_file(gone.file_id, "t1", 3.0)).file_id == gone.file_id
    assert net.lost == 1
    with pytest.raises(FileNotFound):
        await store.get_file(gone.file_id)
    chunks = await store.get_chunks([c for c, _ in content])
    assert {c.refcount for c in chunks.values()} == {1}


def _lose_first_update(store: DynamoMetadataStore) -> list[int]:
    """The next UpdateItem applied and its answer lost (a read timeout): ``[1]`` once it was."""
    update_item = store._rq.client.update_item
    lost: list[int] = []

    def lose_first(**params: Any) -> Any:
        answer = update_item(**params)
        if not lost:
            lost.append(1)
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        return answer

    store._rq.client.update_item = lose_first
    return lost


async def test_surplus_location_forgotten_with_its_answer_lost(store: DynamoMetadataStore) -> None:
    """The conditional forget is applied and its answer lost; the resend finds the copy
    gone and is refused. The trim must then delete nothing: False, the kept copies stay.
    The by-node index still lists the copy (its item goes only after a True), so the
    inventory, which compares that index with the node, does not see it: the orphan sweep,
    which reads the chunk's own set, is what records it again."""
    c = cid("surplus-lost")
    await store.add_locations([Location(c, n, 7) for n in ("n1", "n2", "n3")], 1.0)
    lost = _lose_first_update(store)
    assert not await store.remove_surplus_location(Location(c, "n3", 7), {"n1", "n2"})
    assert lost == [1]
    assert await store.get_locations([c]) == {c: {"n1", "n2"}}
    assert await store.node_chunks("n3", limit=10) == [c]


@pytest.mark.parametrize(
    ("expect", "state"),
    [({UPLOAD_OPEN}, UPLOAD_COMPLETING), ({UPLOAD_OPEN, UPLOAD_COMPLETING}, UPLOAD_DONE)],
    ids=["complete", "abort"],
)
async def test_multipart_state_moved_with_its_answer_lost(
    store: DynamoMetadataStore, expect: set[str], state: str
) -> None:
    """A Complete's (or an Abort's) state move applied and its answer lost: the resend
    finds the state moved already, by this very call. It answers the upload as it was
    before, as the first answer would have; an UploadNotFound left the upload stuck
    (completing: every Complete and Abort refused until its TTL) and its parts unreleased."""
    u = MultipartUpload(new_upload_id(5.0), "t1", "b1", "k", 5.0, "", ())
    await store.create_multipart_upload(u)
    lost = _lose_first_update(store)
    before = await store.set_multipart_state(u.upload_id, expect, state)
    assert lost == [1]
    assert before == u
    assert (await store.get_multipart_upload(u.upload_id)).state == state
    # another call's move is still refused, lost answer or not
    with pytest.raises(UploadNotFound):
        await store.set_multipart_state(u.upload_id, expect, state)


def _lose_first_delete(store: DynamoMetadataStore) -> list[int]:
    """The next file delete (DeleteItem or TransactWriteItems) applied and its answer lost;
    a transaction's resend with the same token answered as done, as DynamoDB does."""
    client = store._rq.client
    lost: list[int] = []
    applied: set[str] = set()

    def wrap(send: Any) -> Any:
        def call(**params: Any) -> Any:
            token = params.get("ClientRequestToken")
            if token is not None and token in applied:
                return {}
            answer = send(**params)
            if token is not None:
                applied.add(token)
            if not lost:
                lost.append(1)
                raise ReadTimeoutError(endpoint_url="http://dynamodb")
            return answer

        return call

    client.delete_item = wrap(client.delete_item)
    client.transact_write_items = wrap(client.transact_write_items)
    return lost


@pytest.mark.parametrize("by", ["client", "gc"])
async def test_pending_file_delete_with_its_answer_lost(
    store: DynamoMetadataStore, by: str
) -> None:
    """A pending file's delete applied and its answer lost: answered as done (the client's
    DELETE, GC's sweep of a stale upload), and its manifest pages go with it; a refusal
    left them behind for good (nothing else deletes a manifest partition)."""
    rec, manifest = new_file("pending-lost", [(cid(("pl", i)), 10) for i in range(300)])
    await store.create_file(rec, manifest)
    mid = (await store._file_item(rec.file_id, ("mid",)))["mid"]["S"]
    lost = _lose_first_delete(store)
    if by == "client":
        assert (await store.delete_file(rec.file_id, "t1", 3.0)).file_id == rec.file_id
    else:
        assert await store.delete_pending_file(rec.file_id, 10.0, 11.0)
    assert lost == [1]
    with pytest.raises(FileNotFound):
        await store.get_file(rec.file_id)
    left = await store._rq.run(
        lambda: list(
            store._rq.paginate(
                "query",
                TableName=store.tables["manifests"],
                KeyConditionExpression="mid = :m",
                ExpressionAttributeValues={":m": {"S": mid}},
                ConsistentRead=True,
            )
        )
    )
    assert left == []
