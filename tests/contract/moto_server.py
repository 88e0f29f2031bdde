"""moto's DynamoDB server for the contract suite, one request at a time.

``python tests/contract/moto_server.py PORT`` serves on 127.0.0.1:PORT. moto's threaded server
runs requests concurrently but its conditional writes and TransactWriteItems are not atomic
under threads (a cancelled transaction restores a snapshot of whole tables), whereas DynamoDB's
are. Serializing requests gives the atomicity the concurrency tests rely on; moto is GIL-bound
at a few hundred ops/s anyway, so little speed is lost.

moto's TransactWriteItems snapshots whole tables to roll back a failed transaction, which
makes transactions slower as tables grow; ``_item_level_rollback`` snapshots only the items
a transaction names.
"""

from __future__ import annotations

import copy
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def _touched(backend: Any, action: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(table, hash value, range value) of the item a transaction action names."""
    _, op = next(iter(action.items()))
    table = backend.get_table(op["TableName"])
    key = op.get("Key") or op.get("Item") or {}
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.has_range_key else None
    return table, hash_value, range_value


def _restore(table: Any, hash_value: Any, range_value: Any, item: Any) -> None:
    if range_value is None:
        if item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item
    elif item is None:
        table.items[hash_value].pop(range_value, None)
    else:
        table.items[hash_value][range_value] = item


class _NoTableCopies:
    """A stand-in for the ``copy`` module inside one transaction: the whole-table snapshot
    becomes the table itself; ``_item_level_rollback`` keeps what a rollback needs."""

    @staticmethod
    def deepcopy(obj: Any) -> Any:
        return obj


def _item_level_rollback() -> None:
    """moto's TransactWriteItems snapshots a whole table (deepcopy) for each action that
    names it, so its transactions slow down as tables grow; snapshot only the items the
    actions name instead, and put them back if the transaction fails."""
    backend_class = dynamodb_models.DynamoDBBackend
    original = backend_class.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for action in transact_items:
            try:
                table, hash_value, range_value = _touched(self, action)
            except Exception:  # malformed: moto's own checks will say so
                continue
            current = table.items.get(hash_value)
            if range_value is not None:
                current = (current or {}).get(range_value)
            saved.append((table, hash_value, range_value, copy.deepcopy(current)))
        dynamodb_models.copy = _NoTableCopies  # type: ignore[assignment]
        try:
            original(self, transact_items)
        except BaseException:
            for table, hash_value, range_value, item in reversed(saved):
                _restore(table, hash_value, range_value, item)
            raise
        finally:
            dynamodb_models.copy = copy

    backend_class.transact_write_items = transact_write_items  # type: ignore[method-assign]


def main() -> None:
    _item_level_rollback()
    port = int(sys.argv[1])
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with lock:
            return list(app(environ, start_response))

    run_simple("127.0.0.1", port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
