"""The DynamoDB requests code really sends, as the IAM actions and tables they need.

``recording()`` wraps ``botocore.client.BaseClient._make_api_call`` for the duration of a test:
every request any boto3 client of this process sends passes there (paginators and waiters
included), whichever module of ``dfs.meta`` builds it, so the record does not depend on how the
store is organised inside. Each request is recorded before it is sent, so a call that fails
(say, a condition that does not hold) still counts: IAM is checked before conditions are.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.client import BaseClient

# IAM authorises each action inside a transaction as its single-item action
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
NO_TABLE = "*"  # ListTables and other account-level operations


@dataclass(frozen=True, order=True)
class Access:
    """One IAM action on one table (or one of its indexes)."""

    action: str  # "dynamodb:PutItem"
    table: str  # the table name as sent
    index: bool = False


def accesses(operation: str, params: dict[str, Any]) -> set[Access]:
    """What IAM checks for one DynamoDB request."""
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return {
            Access(f"dynamodb:{TRANSACT_ACTIONS[kind]}", body["TableName"])
            for item in params["TransactItems"]
            for kind, body in item.items()
        }
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return {Access(f"dynamodb:{operation}", table) for table in params["RequestItems"]}
    table = params.get("TableName", NO_TABLE)
    return {Access(f"dynamodb:{operation}", table, index="IndexName" in params)}


class Recorder:
    """The accesses recorded so far; ``take()`` returns and forgets them (one phase)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Access] = []
        self.requests = 0

    def add(self, operation: str, params: dict[str, Any]) -> None:
        found = accesses(operation, params)
        with self._lock:  # the stores call from worker threads
            self._seen.extend(found)
            self.requests += 1

    def take(self) -> set[Access]:
        with self._lock:
            out, self._seen = set(self._seen), []
        return out


@contextlib.contextmanager
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """Record every DynamoDB request this process sends until the block exits."""
    recorder = Recorder()
    original = BaseClient._make_api_call

    def record(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            recorder.add(operation_name, api_params)
        return original(self, operation_name, api_params)

    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", record)
        yield recorder
