"""Table creation for the DynamoDB store: the schema's tables, ACTIVE, with TTL on.

Through the request layer like every other request (retried by the same policy, counted).
Tables that exist are only described, so on a deployment whose tables Terraform made, the
API's role needs no CreateTable or UpdateTimeToLive right to run ``dfs-api init-tables``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from dfs.errors import Unavailable
from dfs.meta.dynamo.requests import Requests
from dfs.meta.dynamo.schema import BILLING_MODE, TABLES


def create_tables(rq: Requests, names: Mapping[str, str], timeout: float = 120.0) -> None:
    """Create the schema's missing tables (ResourceInUse is fine), wait for ACTIVE, enable TTL.

    Blocking: run it on a worker thread (``rq.run``).
    """
    for key, spec in TABLES.items():
        found = rq.call_or_none(
            "describe_table", unless="ResourceNotFoundException", TableName=names[key]
        )
        if found is None:
            _create_table(rq, names[key], spec)
    deadline = time.monotonic() + timeout
    for key in TABLES:
        _wait_until_active(rq, names[key], deadline, timeout)
    for key, spec in TABLES.items():
        if spec["ttl_attribute"]:
            _enable_ttl(rq, names[key], spec["ttl_attribute"])


def _create_table(rq: Requests, name: str, spec: Mapping[str, Any]) -> None:
    params: dict[str, Any] = {
        "TableName": name,
        "KeySchema": spec["KeySchema"],
        "AttributeDefinitions": spec["AttributeDefinitions"],
        "BillingMode": BILLING_MODE,
    }
    if spec["GlobalSecondaryIndexes"]:
        params["GlobalSecondaryIndexes"] = spec["GlobalSecondaryIndexes"]
    # ResourceInUse: someone else is creating it right now, which is as good
    rq.call_or_none("create_table", unless="ResourceInUseException", **params)


def _wait_until_active(rq: Requests, name: str, deadline: float, timeout: float) -> None:
    delay = 0.05
    while True:
        table = rq.call("describe_table", TableName=name)["Table"]
        gsis = table.get("GlobalSecondaryIndexes", [])
        if table["TableStatus"] == "ACTIVE" and all(
            g.get("IndexStatus", "ACTIVE") == "ACTIVE" for g in gsis
        ):
            return
        if time.monotonic() > deadline:
            raise Unavailable(f"dynamodb table {name} not ACTIVE after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def _enable_ttl(rq: Requests, name: str, attr: str) -> None:
    ttl = rq.call("describe_time_to_live", TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return
    rq.call(
        "update_time_to_live",
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": attr},
    )
