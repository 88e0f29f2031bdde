"""The dfs client library: ``from dfs.client import Client``.

``library`` has the ``Client`` facade; ``upload`` and ``download`` the two transfer pipelines
(one file or many), ``connection`` what they share, ``local_files`` the local naming rules,
``resume`` the resume journal and sidecar, ``verify`` replica checks, ``cli`` the command line.
Importing this package loads aiohttp's client only: never click, boto3 or ``aiohttp.web``.
"""

from dfs.client.download import DownloadResult
from dfs.client.file_upload import UploadResult
from dfs.client.library import Client

__all__ = ["Client", "DownloadResult", "UploadResult"]
