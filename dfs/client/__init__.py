"""The dfs client library: ``from dfs.client import Client``.

``library`` has the ``Client`` facade; ``upload`` and ``download`` the two transfer pipelines
(one file or many), ``connection`` what they share, ``local_files`` the local naming rules,
``resume`` the resume journal and sidecar, ``verify`` replica checks, ``cli`` the command line.
Importing this package loads aiohttp's client only: never click, boto3 or ``aiohttp.web``.
"""

from dfs.transport.tls import import_aiohttp

# before any module here imports aiohttp: its TLS contexts load their CA certificates on
# first use, not at every start of the client (dfs.transport.tls)
import_aiohttp()

from dfs.client.download import DownloadResult  # noqa: E402
from dfs.client.library import Client  # noqa: E402
from dfs.client.upload import UploadResult  # noqa: E402

__all__ = ["Client", "DownloadResult", "UploadResult"]
