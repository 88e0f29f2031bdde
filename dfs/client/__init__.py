"""The dfs client library: ``from dfs.client import Client``.

``library`` has the ``Client`` facade; ``upload`` and ``download`` the two transfer pipelines
(one file or many), ``connection`` what they share, ``local_files`` the local naming rules,
``resume`` the resume journal and sidecar, ``verify`` replica checks, ``cli`` the command line.
Importing this package loads aiohttp's client only: never click, boto3 or ``aiohttp.web``.

The three names below are loaded on first use (PEP 562): ``import dfs.client.cli`` (every
``dfs-client`` start) first imports this package, and a command that needs no client (``--help``,
``config``) should not pay for the whole library there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dfs.client.download import DownloadResult
    from dfs.client.file_upload import UploadResult
    from dfs.client.library import Client

__all__ = ["Client", "DownloadResult", "UploadResult"]

_HOMES = {
    "Client": "dfs.client.library",
    "DownloadResult": "dfs.client.download",
    "UploadResult": "dfs.client.file_upload",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups find it without coming back here
    return value
