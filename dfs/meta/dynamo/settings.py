"""Where a DynamoDB store connects and which tables it uses, read from a ``dynamodb://`` URL.

Kept apart from the request layer because it is pure parsing (no boto3): a wrong URL or table
name is a ``ConfigError`` before any client exists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from dfs.errors import ConfigError
from dfs.meta.dynamo.schema import TABLES, table_names

URL_PARAMS = ("region", "endpoint_url", "table_prefix", "create_tables")
_TABLE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,255}")


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
