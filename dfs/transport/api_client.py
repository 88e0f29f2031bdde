"""``ApiClient``: the HTTP client of the API coordinator's endpoints.

Thin: it sends JSON with the caller's bearer token and returns JSON (errors come back as the
DfsError the server raised). Must not import click, boto3 or ``aiohttp.web``.

**Riding out an API restart.** A transfer of thousands of files makes hundreds of API calls;
an API process restarting (a deploy, a crash, one of several behind a load balancer being
replaced) must cost it a pause, not the whole run. So a request that got no answer at all
(``Unreachable``: refused, or the connection broke) is sent again, with backoff, for up to
``RETRY_SECONDS``, when it may be repeated: reads, finalizes (a committed file is answered as
it is), plan requests (a plan whose answer was lost is an abandoned upload, collected like any
other; but a file that plan committed at once, every chunk of it held, stays, and the plan
sent again stores it a second time); once the API answers again, a 503 (Unavailable: its
nodes not registered again yet, where they register through it) is retried the same way,
within the same time. A 503 ``busy`` (the API's slots for such requests held and queued:
nothing of the request was done) is sent again the same way whatever the request, and
without the API having answered before. Not deletes, nor what mints or revokes credentials (``retry=False``), nor a node's heartbeat
(it carries a sequence number the API accepts once). And only once the API has
answered this client: a wrong URL or an API that is not running fails at once, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from dfs import protocol
from dfs.errors import Busy, Unavailable, Unreachable
from dfs.transport.http import ChunkPayload, request, request_json

log = logging.getLogger("dfs.client")

RETRY_SECONDS = protocol.API_RETRY_SECONDS
"""How long a request the API did not answer is sent again by default (the module docstring;
``dfs-client`` takes another from ``DFS_API_RETRY_SECONDS``, 0 for none)."""


def _exclude(body: dict[str, Any], nodes: Collection[str]) -> None:
    """Add the optional ``exclude_nodes`` of the upload routes to ``body``, only when there
    are some (a body without exclusions stays what an API before the field accepts)."""
    if nodes:
        body["exclude_nodes"] = sorted(nodes)  # a set's order would vary from run to run


class ApiClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str | None = None,
        *,
        retry_seconds: float | None = None,
    ) -> None:
        """``retry_seconds``: how long an unanswered request is sent again (default
        ``RETRY_SECONDS``; 0: never)."""
        self._session = session
        self._retry_seconds = RETRY_SECONDS if retry_seconds is None else retry_seconds
        self.base_url = base_url.rstrip("/")
        self._headers = {protocol.AUTHORIZATION: f"Bearer {token}"} if token else {}
        self._answered = False  # the API has answered this client once: retry what it drops

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def call(self, method: str, path: str, *, retry: bool, **kwargs: Any) -> Any:
        """A request to a route this class has no method for (the namespace's); its JSON
        answer. ``retry``: as ``_json``'s."""
        return await self._json(method, path, retry=retry, **kwargs)

    async def _json(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        retry: bool = True,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One API request, sent again while it gets no answer when ``retry`` and the API
        has answered before (the module docstring)."""
        url, sent = self._url(path), {**self._headers, **(headers or {})}
        try:
            result: dict[str, Any] = await request_json(
                self._session, method, url, headers=sent, **kwargs
            )
        except Unreachable as exc:
            if not (retry and self._answered and self._retry_seconds > 0):
                raise
            log.warning("the API did not answer (%s); trying again", exc.message)
            result = await self._again(method, url, sent, kwargs)
        except Busy as exc:  # refused before anything was done: any request is sent again
            if self._retry_seconds <= 0:
                raise
            log.info("the API is busy (%s); trying again", exc.message)
            result = await self._again(method, url, sent, kwargs)
        self._answered = True
        return result

    async def _again(
        self, method: str, url: str, headers: dict[str, str], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """``_json``'s retries: with backoff, for up to ``retry_seconds``."""
        from tenacity import (  # imported only when an API call went unanswered
            AsyncRetrying,
            retry_if_exception_type,
            stop_after_delay,
            wait_exponential_jitter,
        )

        retrying = AsyncRetrying(
            stop=stop_after_delay(self._retry_seconds),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            # and Unavailable (503) from an API just back: until its nodes register again
            # (through it, on SQLite) it has none live, and refuses to plan
            retry=retry_if_exception_type(Unavailable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                result: dict[str, Any] = await request_json(
                    self._session, method, url, headers=headers, **kwargs
                )
        log.warning("the API answers again")
        return result

    async def init_upload(
        self,
        *,
        name: str,
        size: int,
        sha256: str,
        chunker: str,
        chunks: Sequence[dict[str, Any]],
        mode: int | None = None,
        mtime: float | None = None,
        for_object: bool = False,
    ) -> dict[str, Any]:
        """Plan one upload; ``mode`` and ``mtime`` (the file's, for downloads to restore)
        are sent only when given, ``for_object`` only when True (docs/WIRE.md)."""
        body: dict[str, Any] = {
            "name": name,
            "size": size,
            "sha256": sha256,
            "chunker": chunker,
            "chunks": chunks,
        }
        body.update({k: v for k, v in (("mode", mode), ("mtime", mtime)) if v is not None})
        if for_object:
            body["for_object"] = True
        return await self._json("POST", protocol.INIT_UPLOAD, json=body)

    # --- paged uploads (files of any size, page by page: dfs.api.routes_paged) ------------

    async def paged_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start a paged upload: ``body`` has name, chunker and optionally mode, mtime."""
        return await self._json("POST", protocol.PAGED_UPLOAD, json=body)

    async def upload_page(
        self,
        file_id: str,
        page: int,
        offset: int,
        chunks: Sequence[dict[str, Any]],
        receipts: dict[str, str] | None = None,
        exclude_nodes: Collection[str] = (),
    ) -> dict[str, Any]:
        """Append page ``page`` (its first chunk at byte ``offset``); the page's plan."""
        body: dict[str, Any] = {
            "file_id": file_id,
            "page": page,
            "offset": offset,
            "chunks": list(chunks),
            "receipts": receipts or {},
        }
        _exclude(body, exclude_nodes)
        return await self._json("POST", protocol.PAGED_UPLOAD_PAGE, json=body)

    async def prove_page(
        self,
        file_id: str,
        page: int,
        receipts: dict[str, str],
        exclude_nodes: Collection[str] = (),
    ) -> dict[str, Any]:
        """Prove page ``page``; its copies are not asked of ``exclude_nodes`` (while enough
        nodes are left without them)."""
        body: dict[str, Any] = {"file_id": file_id, "page": page, "receipts": receipts}
        _exclude(body, exclude_nodes)
        return await self._json("POST", protocol.PAGED_UPLOAD_PROVE, json=body)

    async def finalize_paged(self, file_id: str, size: int, sha256: str) -> dict[str, Any]:
        body = {"file_id": file_id, "size": size, "sha256": sha256}
        return await self._json("POST", protocol.PAGED_UPLOAD_FINALIZE, json=body)

    async def finalize_upload(
        self,
        file_id: str,
        receipts: dict[str, str] | None = None,
        exclude_nodes: Collection[str] = (),
    ) -> dict[str, Any]:
        """Commit a pending upload; its copies are not asked of ``exclude_nodes`` (while
        enough nodes are left without them)."""
        body: dict[str, Any] = {"file_id": file_id, "receipts": receipts or {}}
        _exclude(body, exclude_nodes)
        return await self._json("POST", protocol.FINALIZE_UPLOAD, json=body)

    async def init_uploads(self, files: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Plans for many files (each an init-upload body), in order."""
        plans, _packs = await self.plan_uploads(files)
        return plans

    async def plan_uploads(
        self, files: Sequence[dict[str, Any]], exclude_nodes: Collection[str] = ()
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``init_uploads``' plans, and the packs of their small chunks: ``{"targets",
        "chunks": [{"file_id", "sha256", "size"}], "cap"}``, one ``/store-chunks`` each.
        ``exclude_nodes``: nodes the chunks are not placed on (while enough others are live)."""
        asked: dict[str, Any] = {"files": list(files)}
        _exclude(asked, exclude_nodes)
        body = await self._json("POST", protocol.INIT_UPLOADS, json=asked)
        plans: list[dict[str, Any]] = body["uploads"]
        packs: list[dict[str, Any]] = body.get("packs", [])
        return plans, packs

    async def finalize_uploads(
        self, uploads: Sequence[dict[str, Any]], exclude_nodes: Collection[str] = ()
    ) -> list[dict[str, Any]]:
        """Finalize many uploads; each answer is file metadata or ``{"file_id", "error"}``.
        ``exclude_nodes``: as ``finalize_upload``'s."""
        asked: dict[str, Any] = {"uploads": list(uploads)}
        _exclude(asked, exclude_nodes)
        body = await self._json("POST", protocol.FINALIZE_UPLOADS, json=asked)
        files: list[dict[str, Any]] = body["files"]
        return files

    async def resume_upload(
        self,
        file_id: str,
        receipts: dict[str, str] | None = None,
        exclude_nodes: Collection[str] = (),
    ) -> dict[str, Any]:
        """A plan for the rest of a pending upload; ``exclude_nodes``: nodes this upload
        failed on, which this plan leaves out."""
        body: dict[str, Any] = {"file_id": file_id, "receipts": receipts or {}}
        _exclude(body, exclude_nodes)
        return await self._json("POST", protocol.RESUME_UPLOAD, json=body)

    async def download_plans(
        self, file_ids: Sequence[str], *, batched: bool = False
    ) -> list[dict[str, Any]]:
        """The plans of ``file_ids`` in order. ``batched``: compact plans (only the fields a
        download uses) whose small files' replicas name a read batch of the answer (one
        ``get-batch`` capability each) instead of carrying a capability; each such
        replica's ``batch`` is replaced here by the batch itself, and its holder (``node_id``,
        ``url``, which a compact answer leaves to the batch) taken from it."""
        request: dict[str, Any] = {"file_ids": list(file_ids)}
        if batched:
            request["batched"] = True
            request["compact"] = True
        body = await self._json("POST", protocol.DOWNLOAD_PLANS, json=request)
        plans: list[dict[str, Any]] = body["plans"]
        batches: list[dict[str, Any]] = body.get("batches") or []
        if batches:
            for plan in plans:
                for chunk in plan.get("chunks", ()):
                    for replica in chunk["replicas"]:
                        if "batch" in replica:
                            batch = batches[int(replica["batch"])]
                            replica["batch"] = batch
                            replica["node_id"] = batch["node_id"]
                            replica["url"] = batch["url"]
        return plans

    async def file(self, file_id: str) -> dict[str, Any]:
        return await self._json("GET", protocol.FILE.format(file_id=file_id))

    async def download_url(self, file_id: str) -> dict[str, Any]:
        return await self._json("GET", protocol.DOWNLOAD.format(file_id=file_id))

    async def check(self, sha256: str) -> dict[str, Any]:
        return await self._json("GET", protocol.CHECK, params={"sha256": sha256})

    async def hashes(self, *, limit: int = 100, page: str | None = None) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit}
        if page:
            params["last_evaluated_key"] = page
        return await self._json("GET", protocol.ADMIN_HASHES, params=params)

    async def download_plan(self, file_id: str) -> dict[str, Any]:
        return await self._json("GET", protocol.DOWNLOAD_PLAN, params={"file_id": file_id})

    async def delete_file(self, file_id: str) -> dict[str, Any]:
        return await self._json("DELETE", protocol.FILE.format(file_id=file_id), retry=False)

    async def list_files(
        self, *, limit: int = 100, after: str | None = None, prefix: str = ""
    ) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit}
        if after:
            params["after"] = after
        if prefix:
            params["prefix"] = prefix
        return await self._json("GET", protocol.FILES, params=params)

    async def proxy_put_chunk(
        self, chunk_id: str, data: bytes | bytearray | memoryview, *, file_id: str
    ) -> dict[str, Any]:
        return await self._json(
            "PUT",
            protocol.PROXY_CHUNK_UPLOAD,
            params={"chunk_id": chunk_id, "file_id": file_id},
            data=ChunkPayload(data),
        )

    async def proxy_get_chunk(self, chunk_id: str) -> bytes:
        async with request(
            self._session,
            "GET",
            self._url(protocol.PROXY_CHUNK_DOWNLOAD),
            params={"chunk_id": chunk_id},
            headers=self._headers,
        ) as resp:
            return await resp.read()

    async def stats(self) -> dict[str, Any]:
        return await self._json("GET", protocol.ADMIN_STATS)

    async def nodes(self) -> dict[str, Any]:
        return await self._json("GET", protocol.NODES)

    async def create_tenant(self, tenant: str) -> dict[str, Any]:
        return await self._json(
            "POST", protocol.ADMIN_TENANTS, json={"tenant": tenant}, retry=False
        )

    async def list_tenants(self) -> dict[str, Any]:
        return await self._json("GET", protocol.ADMIN_TENANTS)

    async def create_token(self, tenant: str, role: str, label: str = "") -> dict[str, Any]:
        body = {"tenant": tenant, "role": role, "label": label}
        return await self._json("POST", protocol.ADMIN_TOKENS, json=body, retry=False)

    async def list_tokens(self, tenant: str | None = None) -> dict[str, Any]:
        params = {"tenant": tenant} if tenant else None
        return await self._json("GET", protocol.ADMIN_TOKENS, params=params)

    async def revoke_token(self, token_id: str) -> dict[str, Any]:
        path = protocol.ADMIN_TOKEN.format(token_id=quote(token_id, safe=""))
        return await self._json("DELETE", path, retry=False)

    async def create_access_key(self, label: str = "", tenant: str | None = None) -> dict[str, Any]:
        body = {"label": label, **({"tenant": tenant} if tenant else {})}
        return await self._json("POST", protocol.ACCESS_KEYS, json=body, retry=False)

    async def list_access_keys(self, tenant: str | None = None) -> dict[str, Any]:
        params = {"tenant": tenant} if tenant else None
        return await self._json("GET", protocol.ACCESS_KEYS, params=params)

    async def revoke_access_key(self, access_key_id: str) -> dict[str, Any]:
        path = protocol.ACCESS_KEY.format(access_key_id=quote(access_key_id, safe=""))
        return await self._json("DELETE", path, retry=False)

    async def drain(self, node_id: str, method: str = "GET") -> dict[str, Any]:
        """A node drain: POST starts it, GET reports it, DELETE cancels it."""
        path = protocol.ADMIN_NODE_DRAIN.format(node_id=quote(node_id, safe=""))
        return await self._json(method, path, retry=method == "GET")

    async def whoami(self) -> dict[str, Any]:
        return await self._json("GET", protocol.WHOAMI)

    async def heartbeat(self, node: dict[str, Any], *, cap: str) -> None:
        headers = {protocol.CAPABILITY: cap}
        await self._json("POST", protocol.NODE_HEARTBEAT, json=node, headers=headers, retry=False)

    async def deregister(self, node_id: str, *, cap: str, boot: int, seq: int) -> None:
        await self._json(
            "POST",
            protocol.NODE_DEREGISTER,
            json={"node_id": node_id, "boot": boot, "seq": seq},
            headers={protocol.CAPABILITY: cap},
            retry=False,
        )
