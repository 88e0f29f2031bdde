"""The request layer of the DynamoDB store: every DynamoDB request dfs makes goes through here.

It owns the boto3 client and what surrounds each request, so that the store modules only build
requests and read answers:

- Blocking boto3 calls run in a thread pool (``run``), so the event loop never waits on them.
- ONE retry policy (tenacity, bounded exponential backoff with jitter) for every request:
  throttling, transaction conflicts, server errors, connection errors, and batch calls that
  left items unprocessed. Each attempt is exactly one request, so a call makes at most
  ``attempts`` requests. BatchGetItem/BatchWriteItem run under the same policy: an attempt
  sends what is still pending and a partial answer counts as a failed attempt (``Incomplete``),
  not as a reason for a second, nested loop of retries.
- Call counting: botocore's own retries are off, so its ``before-call`` event fires once per
  HTTP request; ``calls_by_operation`` counts them, per API operation (for benchmarks of
  metadata calls per GiB).
- ClientRequestToken (``transact(..., token=)``): DynamoDB applies a TransactWriteItems once
  per token and answers a resend of one that succeeded as done, for 10 minutes; a resend
  with other items is refused (IdempotentParameterMismatch). AWS documents the replay of a
  success only, so a resend of a token whose attempt was refused might replay that refusal
  instead of running. The token therefore follows what dfs knows of the earlier attempts:
  after an answer that says nothing was applied (TransactionCanceledException, e.g. a
  TransactionConflict with another transaction; throttling), the next attempt takes a new
  token and runs as a new request; after an attempt whose outcome is unknown (no answer: a
  timeout or a dropped connection; a 5xx; TransactionInProgress), every later attempt of
  the call keeps its token, the only one that can tell whether it was applied (a new one
  could apply it twice). A cancellation on a condition is not retried here: the caller
  reads again and sends a new round, with a new token.
- Error translation, once, in ``run``: a failed condition -> Conflict, a missing table or an
  unreachable endpoint -> Unavailable, ValidationException -> InvalidRequest. Store modules
  never see botocore exceptions: ``call_or_none`` answers None for an expected refusal, and
  ``transact`` raises ``Cancelled`` with the per-action reasons.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

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
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from dfs.errors import ConfigError, Conflict, DfsError, InvalidRequest, Unavailable
from dfs.meta.dynamo.settings import DynamoSettings

T = TypeVar("T")
Item = dict[str, Any]  # a DynamoDB item in the low-level wire form ({"S": ...}, {"N": ...})
Response = dict[str, Any]

TX_MAX = 100  # TransactWriteItems actions
BATCH_WRITE_MAX = 25  # BatchWriteItem requests (moto accepts 26; DynamoDB does not)
BATCH_GET_MAX = 100  # BatchGetItem keys
WORKERS = 16
ATTEMPTS = 8  # requests per call, for throttling / conflicts / unprocessed items / connections
CONDITION_FAILED = "ConditionalCheckFailedException"

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
# retried, but the request may have been applied (or still be running): keep its token
_OUTCOME_OPEN = frozenset(
    {"InternalServerError", "ServiceUnavailable", "TransactionInProgressException"}
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


# --- errors ---------------------------------------------------------------------------------


class Cancelled(Exception):
    """A transaction was cancelled because conditions failed; ``codes`` has one per action."""

    def __init__(self, codes: list[str]) -> None:
        super().__init__(f"transaction cancelled: {codes}")
        self.codes = codes


class Incomplete(Exception):
    """A batch call left unprocessed items/keys (retried, then reported as Unavailable)."""


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reasons(exc: ClientError) -> list[str]:
    return [str(r.get("Code") or "None") for r in exc.response.get("CancellationReasons") or []]


def _refused(exc: BaseException) -> bool:
    """Whether DynamoDB answered that nothing of the request was applied (a retry may be a
    new request); a lost answer, a 5xx or TransactionInProgress leave the outcome open."""
    if not isinstance(exc, ClientError):
        return False
    code = _error_code(exc)
    return code == "TransactionCanceledException" or (
        code in _RETRY_CODES and code not in _OUTCOME_OPEN
    )


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (*_CONNECTION_ERRORS, Incomplete)):
        return True
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        if code in _RETRY_CODES:
            return True
        if code == "TransactionCanceledException":
            reasons = set(_reasons(exc)) - {"None"}
            return bool(reasons) and reasons <= _RETRY_REASONS
    return False


def translate(exc: BaseException) -> DfsError:
    """The one place botocore failures become dfs errors."""
    if isinstance(exc, Cancelled):
        return Conflict(f"metadata write conflicts: {exc}")
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        msg = exc.response.get("Error", {}).get("Message", "")
        if code == CONDITION_FAILED or (
            code == "TransactionCanceledException" and "ConditionalCheckFailed" in _reasons(exc)
        ):
            return Conflict(f"metadata write conflicts: {msg}")
        if code == "ResourceNotFoundException":
            return Unavailable(f"dynamodb table missing ({msg}); run `dfs-api init-tables`")
        if code == "ValidationException":
            return InvalidRequest(f"dynamodb rejected the request: {msg}")
        return Unavailable(f"dynamodb {code}: {msg}")
    if isinstance(exc, Incomplete):
        return Unavailable("dynamodb kept items unprocessed (throttled); try again")
    return Unavailable(f"dynamodb unreachable: {exc}")


# --- the client -------------------------------------------------------------------------------


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


async def open_client(settings: DynamoSettings, env: Mapping[str, str]) -> Any:
    """``make_client`` off the event loop (boto3 reads its data files), errors translated."""
    try:
        return await asyncio.to_thread(make_client, settings, env)
    except BotoCoreError as exc:
        raise translate(exc) from None


def chunks_of(items: Sequence[T], n: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class Requests:
    """DynamoDB requests with one retry policy, counted, in a thread pool (see the module)."""

    def __init__(self, client: Any, *, attempts: int = ATTEMPTS) -> None:
        self.client = client
        self._attempts = attempts
        self._executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dynamodb")
        self._lock = threading.Lock()
        self.calls_by_operation: collections.Counter[str] = collections.Counter()
        client.meta.events.register("before-call.dynamodb", self._count_call)

    def _count_call(self, model: Any = None, **_: Any) -> None:
        with self._lock:
            self.calls_by_operation[getattr(model, "name", "?")] += 1

    @property
    def calls(self) -> int:
        with self._lock:
            return sum(self.calls_by_operation.values())

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread; botocore failures become dfs errors here."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, partial(fn, *args))
        except (ClientError, BotoCoreError, Cancelled, Incomplete) as exc:
            raise translate(exc) from None

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        await asyncio.to_thread(self.client.close)

    # --- requests (worker threads) ----------------------------------------------------------

    def _with_retries(self, request: Callable[[], T]) -> T:
        """The retry policy: ``request`` (one DynamoDB request) at most ``attempts`` times."""
        for attempt in Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=_WAIT,
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                return request()
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, op: str, **params: Any) -> Response:
        """One API operation (``op`` in boto3's snake_case), under the retry policy."""
        method = getattr(self.client, op)
        return self._with_retries(lambda: dict(method(**params)))

    def call_or_none(
        self, op: str, unless: str = CONDITION_FAILED, **params: Any
    ) -> Response | None:
        """``call``, but None when DynamoDB refuses with error code ``unless`` (by default: the
        request's condition failed), which the caller expects and handles."""
        try:
            return self.call(op, **params)
        except ClientError as exc:
            if _error_code(exc) != unless:
                raise
            return None

    def transact(self, actions: list[Item], token: str | None = None) -> None:
        """TransactWriteItems; raises Cancelled(codes) when a condition failed. ``token``: its
        ClientRequestToken, so that the retry policy's resend of a transaction whose answer
        was lost is not applied twice; replaced by a new one for an attempt that follows
        only refusals (see the module). InvalidRequest for more than TX_MAX actions (a
        write too big for one transaction: its caller bounds what it asks for)."""
        if len(actions) > TX_MAX:
            raise InvalidRequest(f"a transaction of {len(actions)} writes (at most {TX_MAX})")
        params: dict[str, Any] = {"TransactItems": actions}
        if token is not None:
            params["ClientRequestToken"] = token
        open_outcome = False  # an attempt of this call may have been applied

        def send() -> None:
            nonlocal open_outcome
            try:
                self.client.transact_write_items(**params)
            except Exception as exc:
                open_outcome = open_outcome or not _refused(exc)
                if token is not None and not open_outcome:
                    params["ClientRequestToken"] = uuid.uuid4().hex
                raise

        try:
            self._with_retries(send)
        except ClientError as exc:
            codes = _reasons(exc)
            if _error_code(exc) == "TransactionCanceledException" and (
                "ConditionalCheckFailed" in codes
            ):
                raise Cancelled(codes) from None
            raise

    def paginate(self, op: str, **params: Any) -> Iterator[Item]:
        """Every item of a Query or Scan, following LastEvaluatedKey."""
        while True:
            resp = self.call(op, **params)
            yield from resp.get("Items", [])
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    def up_to(
        self, op: str, limit: int, params: Mapping[str, Any]
    ) -> tuple[list[Item], Item | None]:
        """At most ``limit`` items of a Query or Scan, and the key to go on after (None at the
        end). Each request asks only for what is left to fill: Limit counts the items
        evaluated before a filter, so a page never exceeds ``limit``."""
        out: list[Item] = []
        last: Item | None = None
        while len(out) < limit:
            resp = self.call(op, Limit=limit - len(out), **params)
            out += resp.get("Items", [])
            last = resp.get("LastEvaluatedKey")
            if not last:
                return out, None
            params = {**params, "ExclusiveStartKey": last}
        return out, last

    def until_processed(
        self, op: str, items: dict[str, Any], unprocessed: str, collect: Callable[[Response], None]
    ) -> None:
        """A batch call under the retry policy: each attempt sends what is still pending.

        An answer that leaves items unprocessed is a failed attempt (``Incomplete``), as a
        throttled request is, so one budget of ``attempts`` requests bounds both.
        """
        pending = items

        def send() -> None:
            nonlocal pending
            resp = dict(getattr(self.client, op)(RequestItems=pending))
            collect(resp)
            pending = resp.get(unprocessed) or {}
            if pending:
                raise Incomplete()

        self._with_retries(send)

    def batch_get(
        self, table: str, keys: Sequence[Item], projection: Sequence[str] | None = None
    ) -> list[Item]:
        """Strongly consistent BatchGetItem of at most BATCH_GET_MAX keys."""
        assert len(keys) <= BATCH_GET_MAX
        if not keys:
            return []
        request: Item = {"Keys": list(keys), "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = ", ".join(f"#{a}" for a in projection)
            request["ExpressionAttributeNames"] = {f"#{a}": a for a in projection}
        out: list[Item] = []
        self.until_processed(
            "batch_get_item",
            {table: request},
            "UnprocessedKeys",
            lambda resp: out.extend(resp.get("Responses", {}).get(table, [])),
        )
        return out

    def batch_write(self, table: str, requests: Sequence[Item]) -> None:
        """BatchWriteItem of at most BATCH_WRITE_MAX Put/Delete requests."""
        assert len(requests) <= BATCH_WRITE_MAX
        self.until_processed(
            "batch_write_item", {table: list(requests)}, "UnprocessedItems", lambda resp: None
        )

    # --- many requests at once (event loop) -------------------------------------------------

    async def get_many(
        self, table: str, keys: Sequence[Item], projection: Sequence[str] | None = None
    ) -> list[Item]:
        """BatchGetItem of any number of keys, BATCH_GET_MAX per call, calls in parallel."""
        parts = await asyncio.gather(
            *(
                self.run(self.batch_get, table, part, projection)
                for part in chunks_of(keys, BATCH_GET_MAX)
            )
        )
        return [item for part in parts for item in part]

    async def write_many(self, table: str, requests: Sequence[Item]) -> None:
        """BatchWriteItem of any number of requests, BATCH_WRITE_MAX per call, in parallel."""
        await asyncio.gather(
            *(
                self.run(self.batch_write, table, part)
                for part in chunks_of(requests, BATCH_WRITE_MAX)
            )
        )
