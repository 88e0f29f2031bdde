"""The command line's names of things: a remote path (``bucket/key``) or a file id.

Pure string rules with no I/O, apart from dfs.client.namespace (which re-exports them) so that
``dfs-client``'s command modules can use them without importing the HTTP client (aiohttp):
``--help``, ``config`` and shell completion never send a request.
"""

from __future__ import annotations

import re

from dfs.errors import InvalidRequest

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def is_remote(arg: str) -> bool:
    """The CLI's one rule: a remote path contains "/" (``bucket/`` or ``bucket/key``)."""
    return "/" in arg and not arg.startswith(("/", "./", "../"))


def is_file_id(arg: str) -> bool:
    return bool(_UUID.match(arg))


def parse_remote(arg: str) -> tuple[str, str]:
    """``bucket/key`` as (bucket, key); ``bucket/`` gives key "" (the whole bucket)."""
    bucket, slash, key = arg.partition("/")
    if not slash or not bucket:
        raise InvalidRequest(f"{arg!r} is not a remote path (bucket/ or bucket/key)")
    return bucket, key
