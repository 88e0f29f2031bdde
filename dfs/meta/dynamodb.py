"""``DynamoMetadataStore``: the metadata port on DynamoDB (boto3). The only module importing boto3.

Tables, keys and indexes are data in ``dfs.meta.dynamo_schema``. How the records map onto them:

| table     | item               | attributes                                             |
|-----------|--------------------|--------------------------------------------------------|
| nodes     | node_id            | NodeRecord fields; ``expires_at`` is the TTL attribute |
| chunks    | chunk_id           | size, refcount, created_at, nodes (set: the copies)    |
| locations | (chunk_id, node_id)| size, created_at; only for the by-node index (repair)  |
| files     | file_id            | FileRecord fields, mid, pages, inline manifest m + mf; |
|           |                    | listed_tenant (by-tenant index key) once complete      |
| manifests | (mid, "p000123")   | a page of PAGE_ENTRIES entries: e (bytes), f (format)  |
|           | (mid, "c000123")   | commit marker: batch 123 of the refcounts is applied   |
| counters  | "stats#07"         | one of COUNTER_SHARDS shards of the Stats fields       |
| counters  | "lease#repair"     | a lease: owner, expires_at, info                       |
| file_hashes | (tenant, sha256) | file_id of the first complete file with that content,  |
|             |                  | files (set: every complete one), v (change count)     |

Why this shape:

- ``get_locations`` is a BatchGetItem of chunk items (100 ids a call), because each chunk item
  carries its copies as a set (authoritative). The location items exist only for the by-node
  index: add writes them before the set, remove deletes them after, so the index is a superset
  of the truth and repair never misses a copy. (Plain writes, not transactions: both are
  idempotent, and moto copies whole tables on every transaction, which made tests quadratic.)
- A manifest lives under a fresh ``mid`` per create_file: pages are written first, then the
  file item is put with ``attribute_not_exists``; a losing create never touches the winner's
  pages, and readers never see a file without its manifest. Up to ``INLINE_ENTRIES`` entries
  ride in the file item itself. Entries are 48 bytes (offset, size, sha256 as binary).
- commit_file: the refcount of each distinct chunk is incremented in TransactWriteItems with
  a condition on the expected "before" state (``refcount`` absent or 0: first referencer; else
  ``refcount > 0``). The expectation comes from a read, but the counted decision is the one the
  conditional write checked atomically: a failed condition cancels the transaction, flips that
  expectation and retries, so stored_bytes/unique_chunks/duplicates_avoided are exact under any
  concurrency. Files with at most ``CHUNKS_PER_TX`` distinct chunks commit in one transaction
  (file state pending -> complete included). Bigger files first move pending -> committing,
  then apply batches of ``CHUNKS_PER_TX`` chunks, each transaction also putting a marker
  (mid, batch) with ``attribute_not_exists``: a re-run after a crash, or a concurrent commit
  of the same file, skips applied batches, so nothing is counted twice. Batches are a pure
  function of the manifest, so every runner computes the same ones. Then committing -> complete
  with total_files/logical_bytes in one transaction.
- delete_file is commit_file backwards: refcount decrements conditional on the expected
  "after" state (``refcount > count``: still referenced; ``refcount = count``: reaches 0 and
  gets ``unref_at``), flipped and retried on cancellation, so counters stay exact. Big files
  go complete -> deleting (invisible, unlisted), apply batches guarded by "d000123" markers,
  then delete the file item with the file counters in one transaction; a crashed delete is
  finished by calling it again.
- The file_hashes item is set with ``if_not_exists`` in the same transaction that makes the
  file complete (``_commit_whole`` or ``_complete``), so the first committed file keeps it and
  ``find_file_by_sha256`` is one strongly consistent GetItem. It also holds ``files``, the set
  of the tenant's complete files with that content, and ``v``, a change count: deleting a
  complete file removes it from the set and, if the item names it, names another member or
  deletes the item, conditional on ``v`` (re-read and retried on cancellation), in the
  transaction that deletes the file (small files) or makes it invisible (``_claim_delete``).
- Counters are sharded so concurrent commits don't all conflict on one item; get_stats sums.
- TTL deletion is late (and moto never does it): live-node reads filter ``expires_at > now``.

Blocking boto3 calls run in this store's thread pool. Throttling, transaction conflicts,
unprocessed batch items and connection errors are retried with bounded exponential backoff
(tenacity); botocore's own retries are off so that ``calls`` counts every request. botocore
errors are translated once, in ``_run``: ConditionalCheckFailed -> Conflict, everything else
-> Unavailable (ValidationException -> InvalidRequest).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import os
import re
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from tenacity import (
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from dfs.errors import ConfigError, Conflict, DfsError, FileNotFound, InvalidRequest, Unavailable
from dfs.meta.base import (
    FILE_COMPLETE,
    FILE_PENDING,
    NODE_DOWN,
    ChunkInfo,
    ChunkState,
    FileRecord,
    Lease,
    Location,
    ManifestEntry,
    MetadataStore,
    NodeRecord,
    Stats,
    TokenRecord,
)
from dfs.meta.dynamo_schema import BILLING_MODE, TABLES, table_names

T = TypeVar("T")
Item = dict[str, Any]  # a DynamoDB item in the low-level wire form ({"S": ...}, {"N": ...})

FILE_COMMITTING = "committing"  # internal: reported as pending
FILE_DELETING = "deleting"  # internal: reported as pending, finished by delete_file
TX_MAX = 100  # TransactWriteItems actions
BATCH_WRITE_MAX = 25  # BatchWriteItem requests (moto accepts 26; DynamoDB does not)
BATCH_GET_MAX = 100  # BatchGetItem keys
# Each chunk takes two actions (its refcount, its tenant's refcount); the transactions built:
#   _commit_whole: file update + 2 per chunk + counter shard + file_hashes update = 2n + 3
#   _commit_batch / _unref_batch: marker + 2 per chunk + counter shard = 2n + 2
#   small delete (_apply_unrefs with _unhash_actions): file delete + 2 per chunk + counter
#     shard + at most one file_hashes update or delete = 2n + 3
#   _complete: 3; _claim_delete: 2; the big delete's last step: 2
# so n = CHUNKS_PER_TX = 48 keeps every one within TX_MAX (test_dynamodb_store checks it).
CHUNKS_PER_TX = (TX_MAX - 3) // 2
PAGE_ENTRIES = 4096  # 4096 * 48 B = 192 KiB per manifest page, well under the 400 KB item limit
INLINE_ENTRIES = 256  # manifests up to this size live in the file item (12 KiB)
COUNTER_SHARDS = 16
WORKERS = 16
BATCH_CONCURRENCY = 8  # files of create_files/commit_files in flight at once
ATTEMPTS = 8  # per request, for throttling / conflicts / unprocessed items / connection errors
MAX_ROUNDS = 64  # per commit transaction, for flipped refcount expectations
URL_PARAMS = ("region", "endpoint_url", "table_prefix", "create_tables")

_COUNTERS = ("total_files", "logical_bytes", "stored_bytes", "unique_chunks", "duplicates_avoided")
_ENTRY = struct.Struct(">QQ32s")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TABLE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_RETRY_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)
_RETRY_REASONS = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)
_WAIT = wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05)
_CONNECTION_ERRORS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)
_FILE_ATTRS = (
    "file_id",
    *TABLES["files"]["GlobalSecondaryIndexes"][0]["Projection"]["NonKeyAttributes"],
)


# --- errors ---------------------------------------------------------------------------------


class _Cancelled(Exception):
    """A transaction was cancelled because conditions failed; ``codes`` has one per action."""

    def __init__(self, codes: list[str]) -> None:
        super().__init__(f"transaction cancelled: {codes}")
        self.codes = codes


class _Incomplete(Exception):
    """A batch call left unprocessed items/keys (retried, then reported as Unavailable)."""


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reasons(exc: ClientError) -> list[str]:
    return [str(r.get("Code") or "None") for r in exc.response.get("CancellationReasons") or []]


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (*_CONNECTION_ERRORS, _Incomplete)):
        return True
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        if code in _RETRY_CODES:
            return True
        if code == "TransactionCanceledException":
            reasons = set(_reasons(exc)) - {"None"}
            return bool(reasons) and reasons <= _RETRY_REASONS
    return False


def _translate(exc: BaseException) -> DfsError:
    """The one place botocore failures become dfs errors."""
    if isinstance(exc, _Cancelled):
        return Conflict(f"metadata write conflicts: {exc}")
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        msg = exc.response.get("Error", {}).get("Message", "")
        if code == "ConditionalCheckFailedException" or (
            code == "TransactionCanceledException" and "ConditionalCheckFailed" in _reasons(exc)
        ):
            return Conflict(f"metadata write conflicts: {msg}")
        if code == "ResourceNotFoundException":
            return Unavailable(f"dynamodb table missing ({msg}); run `dfs-api init-tables`")
        if code == "ValidationException":
            return InvalidRequest(f"dynamodb rejected the request: {msg}")
        return Unavailable(f"dynamodb {code}: {msg}")
    if isinstance(exc, _Incomplete):
        return Unavailable("dynamodb kept items unprocessed (throttled); try again")
    return Unavailable(f"dynamodb unreachable: {exc}")


# --- configuration ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class DynamoSettings:
    region: str | None
    endpoint_url: str | None
    tables: dict[str, str]
    create_tables: bool = False


def settings_from_url(url: str, env: Mapping[str, str]) -> DynamoSettings:
    """``dynamodb://?region=..&endpoint_url=..&table_prefix=..&create_tables=1``.

    URL parameters win over the environment (AWS_REGION / AWS_DEFAULT_REGION,
    AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL, and the table-name variables).
    """
    parts = urlsplit(url)
    if parts.scheme != "dynamodb" or parts.netloc or parts.path not in ("", "/"):
        raise ConfigError("DFS_META_URL", url, "expected dynamodb://?region=..&endpoint_url=..")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - set(URL_PARAMS))
    if unknown:
        raise ConfigError("DFS_META_URL", url, f"unknown parameter(s) {', '.join(unknown)}")
    region = params.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    endpoint = (
        params.get("endpoint_url")
        or env.get("AWS_ENDPOINT_URL_DYNAMODB")
        or env.get("AWS_ENDPOINT_URL")
        or None
    )
    tables = table_names(env, params.get("table_prefix", ""))
    for key, name in tables.items():
        if not _TABLE_NAME_RE.fullmatch(name):
            raise ConfigError(TABLES[key]["env"], name, "not a valid DynamoDB table name")
    create = params.get("create_tables", "").lower() in ("1", "true", "yes")
    return DynamoSettings(region, endpoint, tables, create)


def make_client(settings: DynamoSettings, env: Mapping[str, str]) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
        region_name=settings.region,
    )
    if not session.region_name:
        raise ConfigError("AWS_REGION", None, "required for dynamodb:// (or ?region=)")
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},  # we retry, and count, ourselves
        max_pool_connections=WORKERS,
        connect_timeout=5,
        read_timeout=30,
    )
    return session.client("dynamodb", endpoint_url=settings.endpoint_url, config=config)


# --- item codecs ------------------------------------------------------------------------------


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(int(value))}


def _names(*attrs: str) -> dict[str, str]:
    return {f"#{a}": a for a in attrs}


def _node_item(n: NodeRecord) -> Item:
    return {
        "node_id": _s(n.node_id),
        "host": _s(n.host),
        "port": _n(n.port),
        "zone": _s(n.zone),
        "capacity_bytes": _n(n.capacity_bytes),
        "used_bytes": _n(n.used_bytes),
        "status": _s(n.status),
        "last_heartbeat": _n(float(n.last_heartbeat)),
        "expires_at": _n(float(n.expires_at)),
    }


def _node(item: Item) -> NodeRecord:
    return NodeRecord(
        node_id=item["node_id"]["S"],
        host=item["host"]["S"],
        port=int(item["port"]["N"]),
        zone=item["zone"]["S"],
        capacity_bytes=int(item["capacity_bytes"]["N"]),
        used_bytes=int(item["used_bytes"]["N"]),
        status=item["status"]["S"],
        last_heartbeat=float(item["last_heartbeat"]["N"]),
        expires_at=float(item["expires_at"]["N"]),
    )


def file_item(rec: FileRecord, state: str, mid: str, chunk_count: int) -> Item:
    """A file item without its manifest (``pages`` and inline ``m``/``mf`` are added to it)."""
    item: Item = {
        "file_id": _s(rec.file_id),
        "tenant": _s(rec.tenant),
        "name": _s(rec.name),
        "size": _n(rec.size),
        "sha256": _s(rec.sha256),
        "chunker": _s(rec.chunker),
        "state": _s(state),
        "created_at": _n(float(rec.created_at)),
        "chunk_count": _n(chunk_count),
        "mid": _s(mid),
    }
    if state == FILE_COMPLETE:
        item["listed_tenant"] = _s(rec.tenant)
    return item


def _file(item: Item) -> FileRecord:
    state = item["state"]["S"]
    return FileRecord(
        file_id=item["file_id"]["S"],
        name=item["name"]["S"],
        size=int(item["size"]["N"]),
        sha256=item["sha256"]["S"],
        chunker=item["chunker"]["S"],
        tenant=item["tenant"]["S"],
        state=FILE_COMPLETE if state == FILE_COMPLETE else FILE_PENDING,
        created_at=float(item["created_at"]["N"]),
        chunk_count=int(item["chunk_count"]["N"]),
    )


def encode_entries(entries: Sequence[ManifestEntry]) -> tuple[str, bytes]:
    """(format, bytes): "b" = 48-byte binary records; "z" = zlib'd JSON for odd ids."""
    try:
        out = bytearray()
        for e in entries:
            if not _SHA256_RE.fullmatch(e.chunk_id):
                raise ValueError(e.chunk_id)
            out += _ENTRY.pack(e.offset, e.size, bytes.fromhex(e.chunk_id))
        return "b", bytes(out)
    except (ValueError, struct.error):
        rows = [[e.offset, e.size, e.chunk_id] for e in entries]
        return "z", zlib.compress(json.dumps(rows, separators=(",", ":")).encode())


def decode_entries(fmt: str, data: bytes) -> list[ManifestEntry]:
    if fmt == "b":
        return [ManifestEntry(o, s, c.hex()) for o, s, c in _ENTRY.iter_unpack(data)]
    return [ManifestEntry(o, s, c) for o, s, c in json.loads(zlib.decompress(data))]


def _page_key(no: int) -> str:
    return f"p{no:06d}"


def _marker_key(no: int) -> str:
    return f"c{no:06d}"


def _chunks_of(items: Sequence[T], n: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


@dataclasses.dataclass(frozen=True, slots=True)
class _Ref:
    """A distinct chunk of a manifest: how many entries reference it, and its size."""

    chunk_id: str
    count: int
    size: int


def _refs(manifest: Iterable[ManifestEntry]) -> list[_Ref]:
    counts: collections.Counter[str] = collections.Counter()
    sizes: dict[str, int] = {}
    for e in manifest:
        counts[e.chunk_id] += 1
        sizes[e.chunk_id] = max(sizes.get(e.chunk_id, 0), e.size)
    return [_Ref(c, counts[c], sizes[c]) for c in sorted(counts)]


# --- the store --------------------------------------------------------------------------------


class DynamoMetadataStore:
    """MetadataStore on DynamoDB; see the module docstring for the layout.

    ``calls`` counts DynamoDB requests made by this store (``calls_by_operation`` per API
    operation), for benchmarks of metadata calls per GiB.
    """

    def __init__(self, client: Any, tables: Mapping[str, str], *, attempts: int = ATTEMPTS) -> None:
        self._client = client
        self._attempts = attempts
        self.tables = dict(tables)
        self._executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dynamodb")
        self._lock = threading.Lock()
        self.calls_by_operation: collections.Counter[str] = collections.Counter()
        client.meta.events.register("before-call.dynamodb", self._count_call)

    @classmethod
    async def open(cls, url: str, env: Mapping[str, str] | None = None) -> DynamoMetadataStore:
        env = os.environ if env is None else env
        settings = settings_from_url(url, env)
        try:
            client = await asyncio.to_thread(make_client, settings, env)
        except BotoCoreError as exc:
            raise _translate(exc) from None
        store = cls(client, settings.tables)
        if settings.create_tables:
            await store.create_tables()
        return store

    def _count_call(self, model: Any = None, **_: Any) -> None:
        with self._lock:
            self.calls_by_operation[getattr(model, "name", "?")] += 1

    @property
    def calls(self) -> int:
        with self._lock:
            return sum(self.calls_by_operation.values())

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, partial(fn, *args))
        except (ClientError, BotoCoreError, _Cancelled, _Incomplete) as exc:
            raise _translate(exc) from None

    # --- requests (worker threads) ----------------------------------------------------------

    def _req(self, op: str, **params: Any) -> dict[str, Any]:
        """One API call, retried on throttling, transaction conflicts and connection errors."""
        method = getattr(self._client, op)
        for attempt in Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=_WAIT,
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                result: dict[str, Any] = method(**params)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _transact(self, actions: list[Item]) -> None:
        """TransactWriteItems; raises _Cancelled(codes) when a condition failed."""
        assert len(actions) <= TX_MAX
        try:
            self._req("transact_write_items", TransactItems=actions)
        except ClientError as exc:
            codes = _reasons(exc)
            if _error_code(exc) == "TransactionCanceledException" and (
                "ConditionalCheckFailed" in codes
            ):
                raise _Cancelled(codes) from None
            raise

    def _batch_get(
        self, table: str, keys: Sequence[Item], projection: Sequence[str] | None = None
    ) -> list[Item]:
        """Strongly consistent BatchGetItem of at most BATCH_GET_MAX keys."""
        assert len(keys) <= BATCH_GET_MAX
        if not keys:
            return []
        request: Item = {"Keys": list(keys), "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = ", ".join(f"#{a}" for a in projection)
            request["ExpressionAttributeNames"] = _names(*projection)
        out: list[Item] = []
        self._until_processed(
            "batch_get_item",
            {table: request},
            "UnprocessedKeys",
            lambda resp: out.extend(resp.get("Responses", {}).get(table, [])),
        )
        return out

    def _batch_write(self, table: str, requests: Sequence[Item]) -> None:
        """BatchWriteItem of at most BATCH_WRITE_MAX Put/Delete requests."""
        assert len(requests) <= BATCH_WRITE_MAX
        self._until_processed(
            "batch_write_item", {table: list(requests)}, "UnprocessedItems", lambda resp: None
        )

    def _until_processed(
        self,
        op: str,
        pending: dict[str, Any],
        unprocessed: str,
        collect: Callable[[dict[str, Any]], None],
    ) -> None:
        """Repeat a batch call on what DynamoDB left unprocessed, with bounded backoff."""
        for attempt in Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=_WAIT,
            retry=retry_if_exception_type(_Incomplete),
            reraise=True,
        ):
            with attempt:
                resp = self._req(op, RequestItems=pending)
                collect(resp)
                pending = resp.get(unprocessed) or {}
                if pending:
                    raise _Incomplete()

    def _paginate(self, op: str, **params: Any) -> Iterator[Item]:
        """Every item of a Query or Scan, following LastEvaluatedKey."""
        while True:
            resp = self._req(op, **params)
            yield from resp.get("Items", [])
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    async def _get_many(
        self, table: str, keys: Sequence[Item], projection: Sequence[str] | None = None
    ) -> list[Item]:
        """BatchGetItem of any number of keys, BATCH_GET_MAX per call, calls in parallel."""
        parts = await asyncio.gather(
            *(
                self._run(self._batch_get, table, part, projection)
                for part in _chunks_of(keys, BATCH_GET_MAX)
            )
        )
        return [item for part in parts for item in part]

    async def _write_many(self, table: str, requests: Sequence[Item]) -> None:
        await asyncio.gather(
            *(
                self._run(self._batch_write, table, part)
                for part in _chunks_of(requests, BATCH_WRITE_MAX)
            )
        )

    # --- tables -----------------------------------------------------------------------------

    async def create_tables(self, wait_seconds: float = 120.0) -> None:
        """Create every table of the schema (idempotent), wait until ACTIVE, enable TTL."""
        await self._run(create_tables, self._client, self.tables, wait_seconds)

    # --- nodes ------------------------------------------------------------------------------

    async def upsert_node(self, node: NodeRecord) -> None:
        await self._run(
            partial(self._req, "put_item", TableName=self.tables["nodes"], Item=_node_item(node))
        )

    async def remove_node(self, node_id: str) -> None:
        await self._run(
            partial(
                self._req,
                "delete_item",
                TableName=self.tables["nodes"],
                Key={"node_id": _s(node_id)},
            )
        )

    async def deregister_node(self, node_id: str, now: float) -> None:
        def op() -> None:
            try:
                self._req(
                    "update_item",
                    TableName=self.tables["nodes"],
                    Key={"node_id": _s(node_id)},
                    UpdateExpression="SET #expires_at = :now, #status = :down",
                    # never create a tombstone, never extend an expired entry
                    ConditionExpression="attribute_exists(#node_id) AND #expires_at > :now",
                    ExpressionAttributeNames=_names("expires_at", "status", "node_id"),
                    ExpressionAttributeValues={":now": _n(float(now)), ":down": _s(NODE_DOWN)},
                )
            except ClientError as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise

        await self._run(op)

    async def list_live_nodes(self, now: float) -> list[NodeRecord]:
        def op() -> list[NodeRecord]:
            items = self._paginate(
                "scan",
                TableName=self.tables["nodes"],
                ConsistentRead=True,
                FilterExpression="#expires_at > :now",
                ExpressionAttributeNames=_names("expires_at"),
                ExpressionAttributeValues={":now": _n(float(now))},
            )
            return sorted((_node(i) for i in items), key=lambda n: n.node_id)

        return await self._run(op)

    async def list_nodes(self) -> list[NodeRecord]:
        def op() -> list[NodeRecord]:
            items = self._paginate("scan", TableName=self.tables["nodes"], ConsistentRead=True)
            return sorted((_node(i) for i in items), key=lambda n: n.node_id)

        return await self._run(op)

    # --- files ------------------------------------------------------------------------------

    async def create_file(self, rec: FileRecord, manifest: Sequence[ManifestEntry]) -> None:
        entries = list(manifest)
        mid = f"{rec.file_id}/{uuid.uuid4().hex[:16]}"
        item = file_item(rec, FILE_PENDING, mid, len(entries))
        page_keys: list[Item] = []
        if len(entries) <= INLINE_ENTRIES:
            fmt, data = encode_entries(entries)
            item.update(pages=_n(0), mf=_s(fmt), m={"B": data})
        else:
            puts: list[Item] = []
            for no, page in enumerate(_chunks_of(entries, PAGE_ENTRIES)):
                fmt, data = encode_entries(page)
                key = {"mid": _s(mid), "part": _s(_page_key(no))}
                page_keys.append(key)
                puts.append({"PutRequest": {"Item": {**key, "f": _s(fmt), "e": {"B": data}}}})
            item["pages"] = _n(len(puts))
            await self._write_many(self.tables["manifests"], puts)

        def put() -> None:
            try:
                self._req(
                    "put_item",
                    TableName=self.tables["files"],
                    Item=item,
                    ConditionExpression="attribute_not_exists(file_id)",
                )
            except ClientError as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise
                # Ours already, if a retried request had in fact succeeded.
                current = self._get_file_item(rec.file_id, ("mid",))
                if current is not None and current["mid"]["S"] == mid:
                    return
                raise

        try:
            await self._run(put)
        except Conflict:
            deletes = [{"DeleteRequest": {"Key": k}} for k in page_keys]
            await self._write_many(self.tables["manifests"], deletes)
            raise

    def _get_file_item(self, file_id: str, attrs: Sequence[str] = _FILE_ATTRS) -> Item | None:
        resp = self._req(
            "get_item",
            TableName=self.tables["files"],
            Key={"file_id": _s(file_id)},
            ConsistentRead=True,
            ProjectionExpression=", ".join(f"#{a}" for a in attrs),
            ExpressionAttributeNames=_names(*attrs),
        )
        item: Item | None = resp.get("Item")
        return item

    async def _file_item(self, file_id: str, attrs: Sequence[str] = _FILE_ATTRS) -> Item:
        item = await self._run(self._get_file_item, file_id, attrs)
        if item is None:
            raise FileNotFound(f"no file {file_id}")
        return item

    async def get_file(self, file_id: str, tenant: str | None = None) -> FileRecord:
        item = await self._file_item(file_id)
        if tenant is not None and item["tenant"]["S"] != tenant:
            raise FileNotFound(f"no file {file_id}")
        return _file(item)

    async def _manifest_of(self, item: Item) -> list[ManifestEntry]:
        pages = int(item["pages"]["N"])
        if pages == 0:
            return decode_entries(item["mf"]["S"], bytes(item["m"]["B"]))
        mid = item["mid"]["S"]
        keys = [{"mid": _s(mid), "part": _s(_page_key(no))} for no in range(pages)]
        got = await self._get_many(self.tables["manifests"], keys)
        if len(got) != pages:
            raise Unavailable(f"manifest of {item['file_id']['S']} is missing pages")
        got.sort(key=lambda i: str(i["part"]["S"]))
        return [e for page in got for e in decode_entries(page["f"]["S"], bytes(page["e"]["B"]))]

    async def get_manifest(self, file_id: str) -> list[ManifestEntry]:
        item = await self._file_item(file_id, ("file_id", "mid", "pages", "mf", "m"))
        return await self._manifest_of(item)

    async def commit_file(self, file_id: str, now: float) -> FileRecord:
        item = await self._file_item(file_id, (*_FILE_ATTRS, "mid", "pages", "mf", "m"))
        rec = _file(item)
        state = item["state"]["S"]
        if state == FILE_COMPLETE:
            return rec
        refs = _refs(await self._manifest_of(item))
        if state == FILE_PENDING and len(refs) <= CHUNKS_PER_TX:
            committed = await self._run(self._commit_whole, rec, refs, now)
        else:
            if state == FILE_PENDING:
                state = await self._run(self._claim, file_id)
            if state != FILE_COMPLETE:
                mid = item["mid"]["S"]
                batches = list(_chunks_of(refs, CHUNKS_PER_TX))
                await asyncio.gather(
                    *(
                        self._run(self._commit_batch, mid, no, batch, now, rec.tenant)
                        for no, batch in enumerate(batches)
                    )
                )
            committed = state != FILE_COMPLETE and await self._run(self._complete, rec)
        if committed:
            return dataclasses.replace(rec, state=FILE_COMPLETE)
        return _file(await self._file_item(file_id))

    async def create_files(
        self, files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]]
    ) -> None:
        # each file is its own conditional put (a transaction could not hold the manifest
        # pages of big files); a few at a time, since every call is a round trip
        sem = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def one(rec: FileRecord, manifest: Sequence[ManifestEntry]) -> None:
            async with sem:
                await self.create_file(rec, manifest)

        try:
            async with asyncio.TaskGroup() as tg:
                for rec, manifest in files:
                    tg.create_task(one(rec, manifest))
        except* DfsError as group:
            raise group.exceptions[0] from None

    async def commit_files(self, file_ids: Sequence[str], now: float) -> list[FileRecord | None]:
        # commit_file's conditional writes keep every count exact whatever runs beside them,
        # so files of a batch may commit concurrently (ids are distinct, see dict.fromkeys)
        sem = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def one(file_id: str) -> FileRecord | None:
            async with sem:
                try:
                    return await self.commit_file(file_id, now)
                except FileNotFound:
                    return None

        ids = list(dict.fromkeys(file_ids))
        done = dict(zip(ids, await asyncio.gather(*(one(f) for f in ids)), strict=True))
        return [done[f] for f in file_ids]

    def _expect_referenced(self, refs: Sequence[_Ref]) -> set[str]:
        """A first guess of which chunks already have references (checked by the writes)."""
        keys = [{"chunk_id": _s(r.chunk_id)} for r in refs]
        items = self._batch_get(self.tables["chunks"], keys, ("chunk_id", "refcount"))
        return {
            i["chunk_id"]["S"] for i in items if "refcount" in i and int(i["refcount"]["N"]) > 0
        }

    def _ref_actions(
        self, refs: Sequence[_Ref], referenced: set[str], now: float, tenant: str
    ) -> tuple[list[Item], dict[str, int]]:
        """Conditional refcount updates for ``refs``, then the tenant's refcount updates (in
        that order: cancellation reasons map to ``refs`` by position), and the counter deltas
        they imply."""
        table = self.tables["chunks"]
        actions: list[Item] = []
        tenant_actions: list[Item] = []
        deltas = dict.fromkeys(("stored_bytes", "unique_chunks", "duplicates_avoided"), 0)
        for r in refs:
            key = {"chunk_id": _s(r.chunk_id)}
            if r.chunk_id in referenced:
                deltas["duplicates_avoided"] += r.count
                update = {
                    "UpdateExpression": "ADD #refcount :c",
                    "ConditionExpression": "#refcount > :zero",
                    "ExpressionAttributeNames": _names("refcount"),
                    "ExpressionAttributeValues": {":c": _n(r.count), ":zero": _n(0)},
                }
            else:
                deltas["duplicates_avoided"] += r.count - 1
                deltas["stored_bytes"] += r.size
                deltas["unique_chunks"] += 1
                update = {
                    "UpdateExpression": "SET #refcount = :c, #size = if_not_exists(#size, :s), "
                    "#created_at = if_not_exists(#created_at, :t)",
                    "ConditionExpression": "attribute_not_exists(#refcount) OR #refcount = :zero",
                    "ExpressionAttributeNames": _names("refcount", "size", "created_at"),
                    "ExpressionAttributeValues": {
                        ":c": _n(r.count),
                        ":s": _n(r.size),
                        ":t": _n(float(now)),
                        ":zero": _n(0),
                    },
                }
            actions.append({"Update": {"TableName": table, "Key": key, **update}})
            tenant_actions.append(
                {
                    "Update": {
                        "TableName": self.tables["tenant_chunks"],
                        "Key": {"tenant": _s(tenant), "chunk_id": _s(r.chunk_id)},
                        "UpdateExpression": "ADD #refcount :c",
                        "ExpressionAttributeNames": _names("refcount"),
                        "ExpressionAttributeValues": {":c": _n(r.count)},
                    }
                }
            )
        return actions + tenant_actions, deltas

    def _counter_action(self, shard_of: str, deltas: Mapping[str, int]) -> Item:
        shard = zlib.crc32(shard_of.encode()) % COUNTER_SHARDS
        names = list(deltas)
        return {
            "Update": {
                "TableName": self.tables["counters"],
                "Key": {"counter": _s(f"stats#{shard:02d}")},
                "UpdateExpression": "ADD " + ", ".join(f"#{n} :{n}" for n in names),
                "ExpressionAttributeNames": _names(*names),
                "ExpressionAttributeValues": {f":{n}": _n(v) for n, v in deltas.items()},
            }
        }

    def _apply_refs(
        self,
        head: Item,
        shard_of: str,
        refs: Sequence[_Ref],
        now: float,
        extra: Mapping[str, int],
        tenant: str,
        tail: Sequence[Item] = (),
    ) -> bool:
        """Run [head, refcount updates..., counters, tail...] until the refcount guesses hold.

        Returns False when ``head``'s own condition failed (already done by someone else).
        """
        referenced = self._expect_referenced(refs)
        for _ in range(MAX_ROUNDS):
            actions, deltas = self._ref_actions(refs, referenced, now, tenant)
            counters = self._counter_action(shard_of, {**extra, **deltas})
            try:
                self._transact([head, *actions, counters, *tail])
                return True
            except _Cancelled as exc:
                if exc.codes[0] == "ConditionalCheckFailed":
                    return False
                for r, code in zip(refs, exc.codes[1:], strict=False):
                    if code == "ConditionalCheckFailed":
                        referenced ^= {r.chunk_id}
        raise Unavailable("commit kept losing refcount races; try again")

    def _commit_whole(self, rec: FileRecord, refs: Sequence[_Ref], now: float) -> bool:
        """A file of few distinct chunks: state, refcounts and counters in one transaction."""
        head = self._complete_action(rec, FILE_PENDING)
        extra = {"total_files": 1, "logical_bytes": rec.size}
        tail = [self._hash_action(rec)]
        return self._apply_refs(head, rec.file_id, refs, now, extra, rec.tenant, tail)

    def _hash_key(self, rec: FileRecord) -> Item:
        return {"tenant": _s(rec.tenant), "sha256": _s(rec.sha256)}

    def _hash_action(self, rec: FileRecord) -> Item:
        """Point (tenant, sha256) at this file unless an earlier complete file holds it, and
        add it to the set of the tenant's complete files with that content (``v`` counts
        changes, so a delete can re-point the entry conditionally)."""
        return {
            "Update": {
                "TableName": self.tables["file_hashes"],
                "Key": self._hash_key(rec),
                "UpdateExpression": "SET #file_id = if_not_exists(#file_id, :f) "
                "ADD #files :fs, #v :one",
                "ExpressionAttributeNames": _names("file_id", "files", "v"),
                "ExpressionAttributeValues": {
                    ":f": _s(rec.file_id),
                    ":fs": {"SS": [rec.file_id]},
                    ":one": _n(1),
                },
            }
        }

    def _unhash_actions(self, rec: FileRecord) -> list[Item]:
        """What deleting complete file ``rec`` does to its file_hashes entry: drop it from the
        set and, if the entry names it, name another file of the set or delete the entry.
        Conditional on the entry being unchanged since this (strongly consistent) read; a
        cancelled transaction calls this again."""
        item = self._req(
            "get_item",
            TableName=self.tables["file_hashes"],
            Key=self._hash_key(rec),
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return []
        current = item["file_id"]["S"]
        files = set(item.get("files", {}).get("SS", [])) | {current}
        if rec.file_id not in files and current != rec.file_id:
            return []
        names = _names("file_id", "v")
        values: Item = {":cur": _s(current)}
        if "v" in item:
            cond = "#v = :v AND #file_id = :cur"
            values[":v"] = item["v"]
        else:  # an entry written before the set existed
            cond = "attribute_not_exists(#v) AND #file_id = :cur"
        base = {
            "TableName": self.tables["file_hashes"],
            "Key": self._hash_key(rec),
            "ConditionExpression": cond,
            "ExpressionAttributeNames": names,
        }
        rest = sorted(files - {rec.file_id})
        if not rest:
            return [{"Delete": {**base, "ExpressionAttributeValues": values}}]
        values[":f"] = _s(current if current != rec.file_id else rest[0])
        values[":one"] = _n(1)
        update = "SET #file_id = :f ADD #v :one"
        if "files" in item:
            update += " DELETE #files :me"
            names["#files"] = "files"
            values[":me"] = {"SS": [rec.file_id]}
        return [
            {"Update": {**base, "UpdateExpression": update, "ExpressionAttributeValues": values}}
        ]

    def _complete_action(self, rec: FileRecord, expected_state: str) -> Item:
        return {
            "Update": {
                "TableName": self.tables["files"],
                "Key": {"file_id": _s(rec.file_id)},
                "UpdateExpression": "SET #state = :complete, #listed_tenant = #tenant",
                "ConditionExpression": "#state = :expected",
                "ExpressionAttributeNames": _names("state", "listed_tenant", "tenant"),
                "ExpressionAttributeValues": {
                    ":complete": _s(FILE_COMPLETE),
                    ":expected": _s(expected_state),
                },
            }
        }

    def _claim(self, file_id: str) -> str:
        """pending -> committing; returns the state the file is in afterwards."""
        try:
            self._req(
                "update_item",
                TableName=self.tables["files"],
                Key={"file_id": _s(file_id)},
                UpdateExpression="SET #state = :committing",
                ConditionExpression="#state = :pending",
                ExpressionAttributeNames=_names("state"),
                ExpressionAttributeValues={
                    ":committing": _s(FILE_COMMITTING),
                    ":pending": _s(FILE_PENDING),
                },
            )
            return FILE_COMMITTING
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
        item = self._get_file_item(file_id, ("state",))
        if item is None:
            raise FileNotFound(f"no file {file_id}")
        return str(item["state"]["S"])

    def _commit_batch(
        self, mid: str, no: int, refs: Sequence[_Ref], now: float, tenant: str
    ) -> None:
        """Apply batch ``no`` of a big file's refcounts once, guarded by its marker item."""
        marker = {
            "Put": {
                "TableName": self.tables["manifests"],
                "Item": {"mid": _s(mid), "part": _s(_marker_key(no)), "at": _n(float(now))},
                "ConditionExpression": "attribute_not_exists(mid)",
            }
        }
        self._apply_refs(marker, f"{mid}/{no}", refs, now, {}, tenant)

    def _complete(self, rec: FileRecord) -> bool:
        """committing -> complete, counting the file; False if someone else did it."""
        head = self._complete_action(rec, FILE_COMMITTING)
        counters = self._counter_action(rec.file_id, {"total_files": 1, "logical_bytes": rec.size})
        try:
            self._transact([head, counters, self._hash_action(rec)])
            return True
        except _Cancelled:
            return False

    async def list_files(
        self, tenant: str, *, limit: int, after: str | None = None
    ) -> list[FileRecord]:
        def op() -> list[FileRecord]:
            cond = "#listed_tenant = :t"
            values: Item = {":t": _s(tenant)}
            if after is not None:
                cond += " AND #file_id > :after"
                values[":after"] = _s(after)
            out: list[FileRecord] = []
            params: dict[str, Any] = {
                "TableName": self.tables["files"],
                "IndexName": "by-tenant",
                "KeyConditionExpression": cond,
                "ExpressionAttributeNames": _names(
                    "listed_tenant", *(["file_id"] if after else [])
                ),
                "ExpressionAttributeValues": values,
            }
            while len(out) < limit:
                resp = self._req("query", Limit=limit - len(out), **params)
                out += [_file(i) for i in resp.get("Items", [])]
                if not resp.get("LastEvaluatedKey"):
                    break
                params["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
            return out

        if limit <= 0:
            return []
        return await self._run(op)

    # --- chunks -----------------------------------------------------------------------------

    def _grouped(self, locations: Iterable[Location]) -> dict[str, tuple[int, list[str]]]:
        groups: dict[str, tuple[int, set[str]]] = {}
        for loc in locations:
            groups.setdefault(loc.chunk_id, (loc.size, set()))[1].add(loc.node_id)
        return {c: (size, sorted(nodes)) for c, (size, nodes) in groups.items()}

    def _location_key(self, chunk_id: str, node_id: str) -> Item:
        return {"chunk_id": _s(chunk_id), "node_id": _s(node_id)}

    async def add_locations(self, locations: Iterable[Location], now: float) -> None:
        groups = self._grouped(locations)
        # The index items first, then the authoritative set on the chunk item: the by-node
        # index is a superset of the truth, so repair never misses a copy.
        puts = [
            {
                "PutRequest": {
                    "Item": {
                        **self._location_key(chunk_id, node_id),
                        "size": _n(size),
                        "created_at": _n(float(now)),
                    }
                }
            }
            for chunk_id, (size, nodes) in groups.items()
            for node_id in nodes
        ]
        await self._write_many(self.tables["locations"], puts)

        def add(chunk_id: str, size: int, nodes: list[str]) -> None:
            self._req(
                "update_item",
                TableName=self.tables["chunks"],
                Key={"chunk_id": _s(chunk_id)},
                UpdateExpression="SET #size = if_not_exists(#size, :s), "
                "#created_at = if_not_exists(#created_at, :t), "
                "#refcount = if_not_exists(#refcount, :zero) ADD #nodes :ns",
                ExpressionAttributeNames=_names("size", "created_at", "refcount", "nodes"),
                ExpressionAttributeValues={
                    ":s": _n(size),
                    ":t": _n(float(now)),
                    ":zero": _n(0),
                    ":ns": {"SS": nodes},
                },
            )

        await asyncio.gather(
            *(self._run(add, c, size, nodes) for c, (size, nodes) in groups.items())
        )

    async def remove_locations(self, locations: Iterable[Location]) -> None:
        groups = self._grouped(locations)

        def remove(chunk_id: str, nodes: list[str]) -> None:
            try:
                self._req(
                    "update_item",
                    TableName=self.tables["chunks"],
                    Key={"chunk_id": _s(chunk_id)},
                    UpdateExpression="DELETE #nodes :ns",
                    # Never create a chunk item just to remove a copy from it.
                    ConditionExpression="attribute_exists(chunk_id)",
                    ExpressionAttributeNames=_names("nodes"),
                    ExpressionAttributeValues={":ns": {"SS": nodes}},
                )
            except ClientError as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise

        await asyncio.gather(*(self._run(remove, c, nodes) for c, (_, nodes) in groups.items()))
        deletes = [
            {"DeleteRequest": {"Key": self._location_key(chunk_id, node_id)}}
            for chunk_id, (_, nodes) in groups.items()
            for node_id in nodes
        ]
        await self._write_many(self.tables["locations"], deletes)

    async def get_locations(self, chunk_ids: Sequence[str]) -> dict[str, set[str]]:
        ids = list(dict.fromkeys(chunk_ids))
        keys = [{"chunk_id": _s(c)} for c in ids]
        items = await self._get_many(self.tables["chunks"], keys, ("chunk_id", "nodes"))
        out: dict[str, set[str]] = {c: set() for c in ids}
        for i in items:
            out[i["chunk_id"]["S"]] = set(i.get("nodes", {}).get("SS", []))
        return out

    async def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkInfo]:
        ids = list(dict.fromkeys(chunk_ids))
        keys = [{"chunk_id": _s(c)} for c in ids]
        attrs = ("chunk_id", "size", "refcount", "created_at")
        items = await self._get_many(self.tables["chunks"], keys, attrs)
        return {
            i["chunk_id"]["S"]: ChunkInfo(
                i["chunk_id"]["S"],
                int(i["size"]["N"]),
                int(i.get("refcount", {"N": "0"})["N"]),
                float(i["created_at"]["N"]),
            )
            for i in items
        }

    async def owned_chunks(
        self, tenant: str, chunk_ids: Sequence[str], *, ever: bool = False
    ) -> set[str]:
        ids = list(dict.fromkeys(chunk_ids))
        keys = [{"tenant": _s(tenant), "chunk_id": _s(c)} for c in ids]
        items = await self._get_many(self.tables["tenant_chunks"], keys, ("chunk_id", "refcount"))
        floor = -1 if ever else 0
        return {
            i["chunk_id"]["S"] for i in items if int(i.get("refcount", {"N": "0"})["N"]) > floor
        }

    async def find_file_by_sha256(self, tenant: str, sha256: str) -> FileRecord | None:
        def get() -> Item | None:
            resp = self._req(
                "get_item",
                TableName=self.tables["file_hashes"],
                Key={"tenant": _s(tenant), "sha256": _s(sha256)},
                ConsistentRead=True,
            )
            item: Item | None = resp.get("Item")
            return item

        entry = await self._run(get)
        if entry is None:
            return None
        try:
            rec = await self.get_file(entry["file_id"]["S"], tenant)
        except FileNotFound:
            return None
        return rec if rec.state == FILE_COMPLETE else None

    async def list_chunk_ids(
        self, *, limit: int, after: str | None = None
    ) -> tuple[list[str], str | None]:
        def op() -> tuple[list[str], str | None]:
            out: list[str] = []
            params: dict[str, Any] = {
                "TableName": self.tables["chunks"],
                "ProjectionExpression": "#chunk_id",
                "FilterExpression": "#refcount > :zero",
                "ExpressionAttributeNames": _names("chunk_id", "refcount"),
                "ExpressionAttributeValues": {":zero": _n(0)},
                "ConsistentRead": True,
            }
            if after is not None:
                params["ExclusiveStartKey"] = {"chunk_id": _s(after)}
            # Limit counts items evaluated before the filter, so each request evaluates at
            # most what is left to fill: a page never exceeds ``limit``
            while len(out) < limit:
                resp = self._req("scan", Limit=limit - len(out), **params)
                out += [i["chunk_id"]["S"] for i in resp.get("Items", [])]
                last = resp.get("LastEvaluatedKey")
                if not last:
                    return out, None
                params["ExclusiveStartKey"] = last
            return out, str(params["ExclusiveStartKey"]["chunk_id"]["S"])

        if limit <= 0:
            return [], after
        return await self._run(op)

    # --- tenants and tokens -----------------------------------------------------------------

    def _auth_key(self, kind: str, id_: str) -> Item:
        return {"kind": _s(kind), "id": _s(id_)}

    async def create_tenant(self, tenant: str, now: float) -> None:
        await self._run(
            partial(
                self._req,
                "put_item",
                TableName=self.tables["auth"],
                Item={**self._auth_key("tenant", tenant), "created_at": _n(float(now))},
                ConditionExpression="attribute_not_exists(#id)",
                ExpressionAttributeNames=_names("id"),
            )
        )

    async def tenant_exists(self, tenant: str) -> bool:
        resp = await self._run(
            partial(
                self._req,
                "get_item",
                TableName=self.tables["auth"],
                Key=self._auth_key("tenant", tenant),
                ConsistentRead=True,
            )
        )
        return "Item" in resp

    async def list_tenants(self) -> list[str]:
        def op() -> list[str]:
            items = self._paginate(
                "query",
                TableName=self.tables["auth"],
                KeyConditionExpression="#kind = :kind",
                ExpressionAttributeNames=_names("kind"),
                ExpressionAttributeValues={":kind": _s("tenant")},
                ConsistentRead=True,
            )
            return [i["id"]["S"] for i in items]

        return await self._run(op)

    async def put_token(self, rec: TokenRecord) -> None:
        item = {
            **self._auth_key("token", rec.token_hash),
            "tenant": _s(rec.tenant),
            "role": _s(rec.role),
            "label": _s(rec.label),
            "created_at": _n(float(rec.created_at)),
        }
        await self._run(
            partial(
                self._req,
                "put_item",
                TableName=self.tables["auth"],
                Item=item,
                ConditionExpression="attribute_not_exists(#id)",
                ExpressionAttributeNames=_names("id"),
            )
        )

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        resp = await self._run(
            partial(
                self._req,
                "get_item",
                TableName=self.tables["auth"],
                Key=self._auth_key("token", token_hash),
                ConsistentRead=True,
            )
        )
        item = resp.get("Item")
        if item is None:
            return None
        return TokenRecord(
            token_hash=token_hash,
            tenant=item["tenant"]["S"],
            role=item["role"]["S"],
            label=item["label"]["S"],
            created_at=float(item["created_at"]["N"]),
        )

    # --- delete, garbage collection, leases ------------------------------------------------

    async def delete_file(self, file_id: str, tenant: str, now: float) -> FileRecord:
        item = await self._file_item(file_id, (*_FILE_ATTRS, "mid", "pages", "mf", "m"))
        if item["tenant"]["S"] != tenant:
            raise FileNotFound(f"no file {file_id}")
        rec = _file(item)
        state = item["state"]["S"]
        mid = item["mid"]["S"]
        if state == FILE_COMMITTING:
            raise Conflict(f"file {file_id} is being committed; try again")
        if state == FILE_PENDING:
            await self._run(self._delete_file_item, file_id, FILE_PENDING)
        else:
            refs = _refs(await self._manifest_of(item))
            extra = {"total_files": -1, "logical_bytes": -rec.size}
            if state == FILE_COMPLETE and len(refs) <= CHUNKS_PER_TX:
                head = self._delete_file_action(file_id, FILE_COMPLETE)
                done = await self._run(
                    self._apply_unrefs,
                    head,
                    file_id,
                    refs,
                    now,
                    extra,
                    tenant,
                    partial(self._unhash_actions, rec),
                )
                if not done:
                    raise FileNotFound(f"no file {file_id}")
            else:
                if state == FILE_COMPLETE:
                    await self._run(self._claim_delete, rec)
                batches = list(_chunks_of(refs, CHUNKS_PER_TX))
                await asyncio.gather(
                    *(
                        self._run(self._unref_batch, mid, no, batch, now, tenant)
                        for no, batch in enumerate(batches)
                    )
                )
                head = self._delete_file_action(file_id, FILE_DELETING)
                counters = self._counter_action(file_id, extra)
                try:
                    await self._run(self._transact, [head, counters])
                except Conflict:
                    raise FileNotFound(f"no file {file_id}") from None
        await self._run(self._drop_manifest, mid)
        return rec

    def _delete_file_action(self, file_id: str, expected_state: str) -> Item:
        return {
            "Delete": {
                "TableName": self.tables["files"],
                "Key": {"file_id": _s(file_id)},
                "ConditionExpression": "#state = :expected",
                "ExpressionAttributeNames": _names("state"),
                "ExpressionAttributeValues": {":expected": _s(expected_state)},
            }
        }

    def _delete_file_item(self, file_id: str, expected_state: str) -> None:
        action = self._delete_file_action(file_id, expected_state)["Delete"]
        try:
            self._req("delete_item", **action)
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                raise FileNotFound(f"no file {file_id}") from None
            raise

    def _claim_delete(self, rec: FileRecord) -> None:
        """complete -> deleting: the file vanishes for readers and listings at once, and
        its file_hashes entry moves on in the same transaction."""
        file_id = rec.file_id
        claim = {
            "Update": {
                "TableName": self.tables["files"],
                "Key": {"file_id": _s(file_id)},
                "UpdateExpression": "SET #state = :deleting REMOVE #listed_tenant",
                "ConditionExpression": "#state = :complete",
                "ExpressionAttributeNames": _names("state", "listed_tenant"),
                "ExpressionAttributeValues": {
                    ":deleting": _s(FILE_DELETING),
                    ":complete": _s(FILE_COMPLETE),
                },
            }
        }
        for _ in range(MAX_ROUNDS):
            try:
                self._transact([claim, *self._unhash_actions(rec)])
                return
            except _Cancelled as exc:
                if exc.codes[0] == "ConditionalCheckFailed":
                    break
                # the hash entry changed since it was read: read it again
        else:
            raise Unavailable("delete kept losing races on its content entry; try again")
        item = self._get_file_item(file_id, ("state",))
        if item is None or item["state"]["S"] != FILE_DELETING:
            raise FileNotFound(f"no file {file_id}") from None

    def _drop_manifest(self, mid: str) -> None:
        """Delete every item of a manifest partition (pages and markers)."""
        keys = [
            {"mid": i["mid"], "part": i["part"]}
            for i in self._paginate(
                "query",
                TableName=self.tables["manifests"],
                KeyConditionExpression="#mid = :mid",
                ProjectionExpression="#mid, #part",
                ExpressionAttributeNames=_names("mid", "part"),
                ExpressionAttributeValues={":mid": _s(mid)},
                ConsistentRead=True,
            )
        ]
        for part in _chunks_of(keys, BATCH_WRITE_MAX):
            self._batch_write(
                self.tables["manifests"], [{"DeleteRequest": {"Key": k}} for k in part]
            )

    def _unref_batch(
        self, mid: str, no: int, refs: Sequence[_Ref], now: float, tenant: str
    ) -> None:
        marker = {
            "Put": {
                "TableName": self.tables["manifests"],
                "Item": {"mid": _s(mid), "part": _s(f"d{no:06d}"), "at": _n(float(now))},
                "ConditionExpression": "attribute_not_exists(mid)",
            }
        }
        self._apply_unrefs(marker, f"{mid}/d{no}", refs, now, {}, tenant)

    def _apply_unrefs(
        self,
        head: Item,
        shard_of: str,
        refs: Sequence[_Ref],
        now: float,
        extra: Mapping[str, int],
        tenant: str,
        tail: Callable[[], Sequence[Item]] = tuple,
    ) -> bool:
        """Run [head, refcount decrements..., counters, *tail()] until the guesses of which
        chunks stay referenced (and ``tail``'s conditions) hold; False when ``head``'s own
        condition failed. ``tail`` is called again for every attempt."""
        keys = [{"chunk_id": _s(r.chunk_id)} for r in refs]
        items = self._batch_get(self.tables["chunks"], keys, ("chunk_id", "refcount"))
        counts = {i["chunk_id"]["S"]: int(i.get("refcount", {"N": "0"})["N"]) for i in items}
        staying = {r.chunk_id for r in refs if counts.get(r.chunk_id, 0) > r.count}
        for _ in range(MAX_ROUNDS):
            actions: list[Item] = []
            tenant_actions: list[Item] = []
            deltas = dict.fromkeys(("stored_bytes", "unique_chunks", "duplicates_avoided"), 0)
            for r in refs:
                values: Item = {":c": _n(r.count), ":neg": _n(-r.count)}
                if r.chunk_id in staying:
                    deltas["duplicates_avoided"] -= r.count
                    update = {
                        "UpdateExpression": "ADD #refcount :neg",
                        "ConditionExpression": "#refcount > :c",
                        "ExpressionAttributeNames": _names("refcount"),
                    }
                else:
                    deltas["duplicates_avoided"] -= r.count - 1
                    deltas["stored_bytes"] -= r.size
                    deltas["unique_chunks"] -= 1
                    values[":t"] = _n(float(now))
                    update = {
                        "UpdateExpression": "SET #unref_at = :t ADD #refcount :neg",
                        "ConditionExpression": "#refcount = :c",
                        "ExpressionAttributeNames": _names("refcount", "unref_at"),
                    }
                actions.append(
                    {
                        "Update": {
                            "TableName": self.tables["chunks"],
                            "Key": {"chunk_id": _s(r.chunk_id)},
                            "ExpressionAttributeValues": values,
                            **update,
                        }
                    }
                )
                tenant_actions.append(
                    {
                        "Update": {
                            "TableName": self.tables["tenant_chunks"],
                            "Key": {"tenant": _s(tenant), "chunk_id": _s(r.chunk_id)},
                            "UpdateExpression": "ADD #refcount :neg",
                            "ExpressionAttributeNames": _names("refcount"),
                            "ExpressionAttributeValues": {":neg": _n(-r.count)},
                        }
                    }
                )
            counters = self._counter_action(shard_of, {**extra, **deltas})
            try:
                self._transact([head, *actions, *tenant_actions, counters, *tail()])
                return True
            except _Cancelled as exc:
                if exc.codes[0] == "ConditionalCheckFailed":
                    return False
                for r, code in zip(refs, exc.codes[1:], strict=False):
                    if code == "ConditionalCheckFailed":
                        staying ^= {r.chunk_id}
        raise Unavailable("delete kept losing refcount races; try again")

    async def scan_chunks(self, *, limit: int, after: str | None = None) -> list[ChunkState]:
        def op() -> list[ChunkState]:
            params: dict[str, Any] = {"TableName": self.tables["chunks"], "ConsistentRead": True}
            if after is not None:
                params["ExclusiveStartKey"] = {"chunk_id": _s(after)}
            out: list[ChunkState] = []
            while len(out) < limit:
                resp = self._req("scan", Limit=limit - len(out), **params)
                for i in resp.get("Items", []):
                    created = float(i["created_at"]["N"])
                    unref = float(i.get("unref_at", {"N": "0"})["N"])
                    out.append(
                        ChunkState(
                            i["chunk_id"]["S"],
                            int(i["size"]["N"]),
                            int(i.get("refcount", {"N": "0"})["N"]),
                            frozenset(i.get("nodes", {}).get("SS", [])),
                            max(created, unref),
                        )
                    )
                if not resp.get("LastEvaluatedKey"):
                    break
                params["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
            return out

        if limit <= 0:
            return []
        return await self._run(op)

    async def recent_pending_chunks(self, since: float) -> set[str]:
        def op() -> list[Item]:
            return list(
                self._paginate(
                    "scan",
                    TableName=self.tables["files"],
                    ConsistentRead=True,
                    FilterExpression="#state <> :complete AND #created_at >= :since",
                    ProjectionExpression="#file_id, #pages, #mid, #mf, #m",
                    ExpressionAttributeNames=_names(
                        "state", "created_at", "file_id", "pages", "mid", "mf", "m"
                    ),
                    ExpressionAttributeValues={
                        ":complete": _s(FILE_COMPLETE),
                        ":since": _n(float(since)),
                    },
                )
            )

        out: set[str] = set()
        for item in await self._run(op):
            try:
                out.update(e.chunk_id for e in await self._manifest_of(item))
            except Unavailable:
                continue  # a manifest deleted under us: the file is gone too
        return out

    async def delete_chunk_if_unreferenced(self, chunk_id: str, cutoff: float) -> set[str] | None:
        def op() -> set[str] | None:
            try:
                resp = self._req(
                    "delete_item",
                    TableName=self.tables["chunks"],
                    Key={"chunk_id": _s(chunk_id)},
                    ConditionExpression="(attribute_not_exists(#refcount) OR #refcount = :zero) "
                    "AND #created_at < :cutoff "
                    "AND (attribute_not_exists(#unref_at) OR #unref_at < :cutoff)",
                    ExpressionAttributeNames=_names("refcount", "created_at", "unref_at"),
                    ExpressionAttributeValues={":zero": _n(0), ":cutoff": _n(float(cutoff))},
                    ReturnValues="ALL_OLD",
                )
            except ClientError as exc:
                if _error_code(exc) == "ConditionalCheckFailedException":
                    return None
                raise
            old = resp.get("Attributes")
            if not old:
                return None
            return set(old.get("nodes", {}).get("SS", []))

        nodes = await self._run(op)
        if nodes is not None:
            deletes = [
                {"DeleteRequest": {"Key": self._location_key(chunk_id, n)}} for n in sorted(nodes)
            ]
            await self._write_many(self.tables["locations"], deletes)
        return nodes

    async def node_chunks(self, node_id: str, *, limit: int, after: str | None = None) -> list[str]:
        def op() -> list[str]:
            params: dict[str, Any] = {
                "TableName": self.tables["locations"],
                "IndexName": "by-node",
                "KeyConditionExpression": "#node_id = :n",
                "ProjectionExpression": "#chunk_id",
                "ExpressionAttributeNames": _names("node_id", "chunk_id"),
                "ExpressionAttributeValues": {":n": _s(node_id)},
            }
            if after:  # DynamoDB rejects an empty string in a key condition
                params["KeyConditionExpression"] += " AND #chunk_id > :after"
                params["ExpressionAttributeValues"][":after"] = _s(after)
            out: list[str] = []
            while len(out) < limit:
                resp = self._req("query", Limit=limit - len(out), **params)
                out += [i["chunk_id"]["S"] for i in resp.get("Items", [])]
                if not resp.get("LastEvaluatedKey"):
                    break
                params["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
            return out

        if limit <= 0:
            return []
        return await self._run(op)

    async def stale_pending_files(self, before: float, *, limit: int) -> list[FileRecord]:
        def op() -> list[FileRecord]:
            items = self._paginate(
                "scan",
                TableName=self.tables["files"],
                ConsistentRead=True,
                FilterExpression="#state <> :complete AND #created_at < :before",
                ProjectionExpression=", ".join(f"#{a}" for a in _FILE_ATTRS),
                ExpressionAttributeNames=_names(*_FILE_ATTRS),
                ExpressionAttributeValues={
                    ":complete": _s(FILE_COMPLETE),
                    ":before": _n(float(before)),
                },
            )
            out: list[FileRecord] = []
            for item in items:
                out.append(_file(item))
                if len(out) >= limit:
                    break
            return sorted(out, key=lambda f: f.created_at)

        if limit <= 0:
            return []
        return await self._run(op)

    async def delete_pending_file(self, file_id: str, before: float) -> bool:
        def op() -> str | None:
            try:
                resp = self._req(
                    "delete_item",
                    TableName=self.tables["files"],
                    Key={"file_id": _s(file_id)},
                    # a commit moves the state off pending first, so one of the two loses
                    ConditionExpression="#state = :pending AND #created_at < :before",
                    ExpressionAttributeNames=_names("state", "created_at"),
                    ExpressionAttributeValues={
                        ":pending": _s(FILE_PENDING),
                        ":before": _n(float(before)),
                    },
                    ReturnValues="ALL_OLD",
                )
            except ClientError as exc:
                if _error_code(exc) == "ConditionalCheckFailedException":
                    return None
                raise
            old = resp.get("Attributes")
            return None if not old else str(old["mid"]["S"])

        mid = await self._run(op)
        if mid is None:
            return False
        await self._run(self._drop_manifest, mid)
        return True

    async def acquire_lease(
        self, name: str, owner: str, now: float, ttl: float, info: str = ""
    ) -> bool:
        def op() -> bool:
            try:
                self._req(
                    "put_item",
                    TableName=self.tables["counters"],
                    Item={
                        "counter": _s(f"lease#{name}"),
                        "owner": _s(owner),
                        "expires_at": _n(float(now + ttl)),
                        "info": _s(info),
                    },
                    ConditionExpression="attribute_not_exists(#counter) OR #expires_at <= :now "
                    "OR #owner = :owner",
                    ExpressionAttributeNames=_names("counter", "expires_at", "owner"),
                    ExpressionAttributeValues={":now": _n(float(now)), ":owner": _s(owner)},
                )
            except ClientError as exc:
                if _error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
            return True

        return await self._run(op)

    async def get_lease(self, name: str) -> Lease | None:
        resp = await self._run(
            partial(
                self._req,
                "get_item",
                TableName=self.tables["counters"],
                Key={"counter": _s(f"lease#{name}")},
                ConsistentRead=True,
            )
        )
        item = resp.get("Item")
        if item is None:
            return None
        return Lease(name, item["owner"]["S"], float(item["expires_at"]["N"]), item["info"]["S"])

    async def get_stats(self) -> Stats:
        keys = [{"counter": _s(f"stats#{k:02d}")} for k in range(COUNTER_SHARDS)]
        items = await self._get_many(self.tables["counters"], keys)
        totals = dict.fromkeys(_COUNTERS, 0)
        for i in items:
            for name in _COUNTERS:
                if name in i:
                    totals[name] += int(i[name]["N"])
        return Stats(**totals)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        await asyncio.to_thread(self._client.close)


# --- table creation ---------------------------------------------------------------------------


def create_tables(client: Any, names: Mapping[str, str], timeout: float = 120.0) -> None:
    """Create the schema's missing tables (ResourceInUse is fine), wait for ACTIVE, enable TTL.

    Tables that exist are only described, so on a deployment whose tables Terraform made, the
    API's role needs no CreateTable or UpdateTimeToLive right to run ``init-tables``.
    """
    for key, spec in TABLES.items():
        try:
            client.describe_table(TableName=names[key])
            continue
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
        params: dict[str, Any] = {
            "TableName": names[key],
            "KeySchema": spec["KeySchema"],
            "AttributeDefinitions": spec["AttributeDefinitions"],
            "BillingMode": BILLING_MODE,
        }
        if spec["GlobalSecondaryIndexes"]:
            params["GlobalSecondaryIndexes"] = spec["GlobalSecondaryIndexes"]
        try:
            client.create_table(**params)
        except ClientError as exc:
            if _error_code(exc) != "ResourceInUseException":
                raise
    deadline = time.monotonic() + timeout
    for key in TABLES:
        delay = 0.05
        while True:
            table = client.describe_table(TableName=names[key])["Table"]
            gsis = table.get("GlobalSecondaryIndexes", [])
            if table["TableStatus"] == "ACTIVE" and all(
                g.get("IndexStatus", "ACTIVE") == "ACTIVE" for g in gsis
            ):
                break
            if time.monotonic() > deadline:
                raise Unavailable(f"dynamodb table {names[key]} not ACTIVE after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    for key, spec in TABLES.items():
        attr = spec["ttl_attribute"]
        if not attr:
            continue
        ttl = client.describe_time_to_live(TableName=names[key])["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            continue
        client.update_time_to_live(
            TableName=names[key],
            TimeToLiveSpecification={"Enabled": True, "AttributeName": attr},
        )


if TYPE_CHECKING:
    _: type[MetadataStore] = DynamoMetadataStore
