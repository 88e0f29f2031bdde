"""``dfs-api init-tables``: create the DynamoDB tables of ``dfs.meta.dynamo.schema``.

Idempotent: existing tables are left alone; waits until every table is ACTIVE and TTL is on.
The API's ``main`` dispatches ``init-tables`` here. argparse only (no click outside the client).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from dfs.errors import DfsError

DEFAULT_URL = "dynamodb://"


async def _init(url: str, env: Mapping[str, str], wait_seconds: float) -> dict[str, str]:
    from dfs.meta.dynamo import DynamoMetadataStore

    store = await DynamoMetadataStore.open(url, env)
    try:
        await store.create_tables(wait_seconds)
        return store.tables
    finally:
        await store.close()


def init_tables_main(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> int:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(
        prog="dfs-api init-tables", description="Create the DynamoDB tables dfs uses."
    )
    parser.add_argument(
        "--url",
        default=env.get("DFS_META_URL") or DEFAULT_URL,
        help="metadata URL, dynamodb://?region=..&endpoint_url=..&table_prefix=.. "
        "(default: $DFS_META_URL or dynamodb://)",
    )
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for ACTIVE")
    args = parser.parse_args(argv)
    if not args.url.startswith("dynamodb:"):
        print(f"Error: init-tables needs a dynamodb:// URL, not {args.url!r}", file=sys.stderr)
        return 2
    try:
        tables = asyncio.run(_init(args.url, env, args.wait))
    except DfsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    for key, name in tables.items():
        print(f"{key}\t{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(init_tables_main())
