"""``Client``: the Python API of dfs (the CLI is built on it); one object per API URL.

The facade owns the HTTP session and the settings (token, concurrency, proxy, resume) and
hands them to the pipelines as a ``Connection``: ``dfs.client.upload`` for uploads of one
file or many, ``dfs.client.download`` for downloads of one file or many. The other methods
are one API call each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from dfs import protocol
from dfs.chunking import ChunkerProfile
from dfs.client.avoid import AvoidList, TransferStats
from dfs.client.connection import Connection, ProgressFn
from dfs.client.download import DownloadPipeline, DownloadResult
from dfs.client.early_batches import EarlyBatches
from dfs.client.early_reads import EARLY_READ_BYTES, EarlyChunks
from dfs.client.early_scan import EarlyScan
from dfs.client.file_cache import FileCache, cache_path
from dfs.client.file_upload import UploadResult
from dfs.client.local_files import LocalFile, hash_file
from dfs.client.namespace_sync import SyncMethods
from dfs.client.paged_upload import StreamingUploadPipeline
from dfs.client.prune import PruneMethods
from dfs.client.replan import send_chunk
from dfs.errors import DfsError, InvalidRequest
from dfs.transport.api_client import ApiClient
from dfs.transport.http import make_session
from dfs.transport.node_client import NodeClient

DEFAULT_CONCURRENCY = protocol.DEFAULT_CONCURRENCY


class Client(SyncMethods, PruneMethods):
    """An async dfs client bound to one API URL; use ``async with Client(url) as c``.

    The namespace's calls (buckets, keys, versions, access, usage), transfers to and from
    ``bucket/key`` and ``prune`` are inherited (``dfs.client.namespace``,
    ``dfs.client.namespace_sync``, ``dfs.client.prune``)."""

    def __init__(
        self,
        api_url: str,
        *,
        token: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        proxy: bool = False,
        resume: bool = True,
        overwrite: bool = True,
        file_cache: bool = True,
        session: aiohttp.ClientSession | None = None,
        deadline: protocol.TransferDeadline | None = None,
        api_retry_seconds: float | None = None,
    ) -> None:
        """``deadline``: how long one chunk request to a node may take for its bytes
        (default ``protocol.CHUNK_DEADLINE_FLOOR`` + size / ``CHUNK_MIN_RATE``).
        ``file_cache``: uploads of many files skip reading those listed unchanged since they
        were last stored to the same place (``dfs.client.file_cache``).
        ``api_retry_seconds``: how long a request the API did not answer is sent again
        (``dfs.transport.api_client``; default 60, 0 for never)."""
        if concurrency < 1:
            raise InvalidRequest("concurrency must be >= 1")
        most = protocol.API_RETRY_SECONDS_MAX
        if api_retry_seconds is not None and not 0 <= api_retry_seconds <= most:
            raise InvalidRequest(f"api_retry_seconds must be from 0 to {most:.0f}")
        self.api_retry_seconds = api_retry_seconds
        self.api_url = api_url
        self.token = token
        self.concurrency = concurrency
        self.proxy = proxy
        self.resume = resume
        self.overwrite = overwrite  # False: a download never replaces a file at its target
        self.file_cache = file_cache
        self._own_session = session is None
        self._session = session
        self.deadline = deadline or protocol.TransferDeadline()
        # nodes that just failed this client, and what its transfers did: across calls
        self.avoid = AvoidList()
        self.transfer_stats = TransferStats()
        self._api: ApiClient | None = None
        self._api_session: aiohttp.ClientSession | None = None

    @property
    def api(self) -> ApiClient:
        """The API client of this session: one, so what it learns (that the API answered,
        ``dfs.transport.api_client``) holds for every call of the run."""
        session = self._require_session()
        if self._api is None or self._api_session is not session:
            api = ApiClient(session, self.api_url, self.token, retry_seconds=self.api_retry_seconds)
            self._api, self._api_session = api, session
        return self._api

    @property
    def nodes(self) -> NodeClient:
        return NodeClient(self._require_session(), self.deadline)

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the Client inside 'async with Client(url) as client:'")
        return self._session

    def _connection(self) -> Connection:
        return Connection(
            api=self.api,
            nodes=self.nodes,
            api_url=self.api_url,
            token=self.token,
            concurrency=self.concurrency,
            proxy=self.proxy,
            resume=self.resume,
            overwrite=self.overwrite,
            avoid=self.avoid,
            stats=self.transfer_stats,
        )

    async def __aenter__(self) -> Client:
        if self._session is None:
            # created here, inside the running loop, never in __init__
            self._session = make_session(limit=max(2 * self.concurrency, 16))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # --- transfers (dfs.client.upload, dfs.client.download) --------------------------------

    async def upload(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        profile: ChunkerProfile | None = None,
        progress: ProgressFn | None = None,
    ) -> UploadResult:
        """Upload one file (under ``name``, default its file name), resumable."""
        path = Path(path)
        pipeline = StreamingUploadPipeline(self._connection(), _profile(profile), progress)
        return await pipeline.upload_file(path, name or path.name)

    async def upload_many(
        self,
        files: Iterable[LocalFile],
        *,
        profile: ChunkerProfile | None = None,
        progress: ProgressFn | None = None,
        listed: Callable[[int], None] | None = None,
        failed: Callable[[LocalFile, DfsError], None] | None = None,
        early: EarlyScan | None = None,
        early_batches: EarlyBatches | None = None,
    ) -> list[UploadResult]:
        """Upload ``files`` (a list, or ``dfs.client.local_files.walk`` still listing: it runs
        on a thread while the first files are sent); results in their order. ``listed(n)``:
        the bytes of the files listed, as they are (a progress bar's total). ``failed(f,
        error)``: a file that changed while it was being uploaded (``FileChanged``) is told
        there and left out of the results, and the others go on; without it the upload
        fails with that error. ``early``: a scan of a big file begun before (read by its
        upload if it scanned the version uploaded, with ``profile``), stopped at the end.
        ``early_batches``: the first batches of ``files`` planned before (with ``profile``;
        ``dfs.client.early_batches``), which then reads ``files`` no more: taken here."""
        profile = _profile(profile)
        taken = await asyncio.to_thread(early_batches.take) if early_batches else None
        if taken is not None:
            files = taken.rest
        cache = taken.cache if taken is not None and self.file_cache else None
        if cache is None:  # not loaded early (no early batches, or they stopped before it)
            cache = await self.files_cache("", profile)
        pipeline = StreamingUploadPipeline(self._connection(), profile, progress, cache)
        pipeline.failed = failed
        pipeline.early_scan = early
        try:
            return await pipeline.upload_files(files, listed, early=taken)
        finally:
            if cache is not None:
                cache.save()  # what was stored before a failure is worth remembering too
            if early is not None:  # read, or not (the upload failed before, or did not read
                await asyncio.to_thread(early.stop)  # it): its thread ends here
            if early_batches is not None:  # its answers read: its thread ends here
                await asyncio.to_thread(early_batches.stop)

    async def files_cache(self, bucket: str, profile: ChunkerProfile) -> FileCache | None:
        """The files cache of uploads to ``bucket`` ("": files without a bucket) with
        ``profile``, or None when it is off or the caller's tenant cannot be asked."""
        if not self.file_cache:
            return None
        try:
            tenant = str((await self.api.whoami())["tenant"])
        except (DfsError, KeyError):
            return None
        path = cache_path(self.api_url, tenant, bucket, str(profile))
        return await asyncio.to_thread(FileCache.load, path)

    async def send_chunk(
        self, file_id: str, chunk_id: str, data: bytes, item: dict[str, Any]
    ) -> str:
        """Send one chunk of a plan's ``upload`` list to its targets; return its receipt."""
        return await send_chunk(self._connection(), file_id, chunk_id, data, item)

    async def download(
        self,
        file_id: str,
        out: str | Path,
        *,
        progress: ProgressFn | None = None,
        plan: dict[str, Any] | None = None,
    ) -> DownloadResult:
        """Download one file to ``out`` (a directory: under its stored relative name there;
        ``dfs.client.part_file.STDOUT``: to standard output)."""
        pipeline = DownloadPipeline(self._connection(), progress)
        return await pipeline.download_file(file_id, Path(out), plan=plan)

    async def download_many(
        self,
        files: Sequence[tuple[str, Path]],
        *,
        progress: ProgressFn | None = None,
        plans: Mapping[str, dict[str, Any]] | None = None,
        chunks: dict[str, bytes] | None = None,
        root: Path | None = None,
    ) -> list[DownloadResult]:
        """Download (file_id, target path) pairs, ``concurrency`` files at a time (target
        paths as ``dfs.client.local_files.download_targets`` gives them, under ``root``);
        ``plans`` already fetched, by file id, are used instead of asking again, and so are
        ``chunks`` already read and verified, by chunk id (``early_chunks``)."""
        pipeline = DownloadPipeline(self._connection(), progress)
        pipeline.root = root
        return await pipeline.download_files(files, plans, chunks)

    def early_chunks(self, budget: int = EARLY_READ_BYTES) -> EarlyChunks:
        """Chunks to read ahead of a download, ``budget`` bytes at most
        (``dfs.client.early_reads``): only reads."""
        return EarlyChunks(self._connection(), budget)

    # --- status ---------------------------------------------------------------------------

    async def delete(self, file_id: str) -> dict[str, Any]:
        """Delete one of the tenant's files; its space comes back after the GC grace."""
        return await self.api.delete_file(file_id)

    async def stats(self) -> dict[str, Any]:
        return await self.api.stats()

    async def list_nodes(self) -> dict[str, Any]:
        return await self.api.nodes()

    async def stat(self, file_id: str) -> dict[str, Any]:
        """A complete file's metadata (FileNotFound for unknown, pending or others' files)."""
        return await self.api.file(file_id)

    async def ls(
        self, *, limit: int = 100, after: str | None = None, prefix: str = ""
    ) -> dict[str, Any]:
        """One page of this tenant's files (those named ``prefix...``): ``{"files": [...],
        "next_after"}``."""
        return await self.api.list_files(limit=limit, after=after, prefix=prefix)

    async def check(self, path: str | Path) -> dict[str, Any]:
        """Whether this tenant already stores a file with exactly these bytes (nothing sent
        but the hash): ``{"exists", "file", "sha256", "size"}``."""
        size, digest = await asyncio.to_thread(hash_file, Path(path))
        answer = await self.api.check(digest)
        return {**answer, "sha256": digest, "size": size}

    async def download_url(self, file_id: str) -> dict[str, Any]:
        """A signed URL anyone can fetch the file from until it expires (at most 15 min)."""
        return await self.api.download_url(file_id)

    async def hashes(self, *, limit: int = 100, page: str | None = None) -> dict[str, Any]:
        return await self.api.hashes(limit=limit, page=page)


def _profile(profile: ChunkerProfile | None) -> ChunkerProfile:
    return profile or ChunkerProfile.default()
