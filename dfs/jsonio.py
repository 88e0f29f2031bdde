"""JSON as every dfs process encodes and decodes it (orjson, with the standard library where
orjson refuses): request and answer bodies, the client's files cache.

Kept apart from ``dfs.transport.http`` (which re-exports it) so that code the command line
runs before it loads aiohttp (``dfs.client.early_batches``, the files cache it reads) encodes
and decodes as the client library does. Standard library and orjson only.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def json_bytes(data: Any) -> bytes:
    """``data`` as compact JSON (no blanks after separators), encoded by orjson: a batch's
    plans, a listing page of 1,000 files took the standard library's encoder ~7 ms and
    orjson's ~0.4. What orjson refuses (a lone surrogate in a string, a key that is not a
    string) goes through the standard encoder as before, which escapes it, so the receiver
    still gives its own clear error."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":")).encode()


def compact_json(data: Any) -> str:
    """``json_bytes`` as text (``json=`` bodies, aiohttp's ``dumps=``)."""
    return json_bytes(data).decode()


def parse_json(raw: bytes | bytearray | memoryview) -> Any:
    """Decode a JSON document with orjson (ValueError if it is not one). Unlike ``json``,
    it refuses lone surrogates, NaN and nesting over 1,024 levels, and reads an integer
    beyond 64 bits as a float (which every integer field's check then refuses)."""
    return orjson.loads(raw)
