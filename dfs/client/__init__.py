"""The dfs client library: ``from dfs.client import Client``.

Importing this package loads aiohttp's client only: never click, boto3 or ``aiohttp.web``.
"""

from dfs.client.transfer import Client, DownloadResult, UploadResult

__all__ = ["Client", "DownloadResult", "UploadResult"]
