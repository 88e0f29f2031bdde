"""Many files per request, and resuming an interrupted upload.

| method | path               | body                                    | answer                              |
|--------|--------------------|-----------------------------------------|-------------------------------------|
| POST   | /init-uploads      | ``{"files": [init-upload body, ...]}``  | 201 ``{"uploads": [plan, ...]}`` in order |
| POST   | /finalize-uploads  | ``{"uploads": [{"file_id", "receipts"}]}`` | 200 ``{"files": [metadata or {"file_id", "error"}]}`` |
| POST   | /resume-upload     | ``{"file_id", "receipts"}``             | 200 a plan for the same pending file: only chunks neither proven nor held |
| POST   | /download-plans    | ``{"file_ids": [...]}``                 | 200 ``{"plans": [plan or {"file_id", "error"}]}`` |

At most ``MAX_BATCH_FILES`` files per request. A directory of thousands of small files thus
costs a few requests per thousand files instead of several per file: one metadata read of
the live nodes and of the tenant's chunks per batch, and one has-chunks call per node per
10,000 chunks at finalize.

Resume keeps the Dropship defence intact: receipts are bound to the pending file id they were
minted for, and ``resume-upload``/``finalize`` only accept them for that same file id, which
``get_file(file_id, tenant)`` proves is the caller's own. A chunk is skipped only if it comes
with a valid receipt for this file (or the tenant already owns it) and live nodes hold its
copies; everything else is planned again with fresh capabilities.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from dfs import auth, protocol
from dfs.api.app import COORDINATOR, principal
from dfs.api.service import (
    Coordinator,
    UploadRequest,
    distinct_chunks,
    file_body,
    node_ref,
)
from dfs.errors import Conflict, DfsError, FileNotFound, InvalidRequest
from dfs.ids import new_file_id, parse_file_id
from dfs.meta.base import FILE_COMPLETE, FileRecord, ManifestEntry, NodeRecord
from dfs.server import read_json


def _list(body: dict[str, Any], key: str) -> list[Any]:
    items = body.get(key)
    if not isinstance(items, list) or not 0 < len(items) <= protocol.MAX_BATCH_FILES:
        raise InvalidRequest(f"{key} must be a list of 1-{protocol.MAX_BATCH_FILES} entries")
    return items


def _receipts(value: object) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("receipts must be an object of chunk id -> receipt")
    return value


def _error(file_id: str, exc: DfsError) -> dict[str, Any]:
    return {"file_id": file_id, **exc.to_body()}


def _plan_entry(
    coord: Coordinator, file_id: str, chunk_id: str, size: int, live: Sequence[NodeRecord]
) -> dict[str, Any]:
    targets = coord.place(chunk_id, size, live)
    return {
        "sha256": chunk_id,
        "size": size,
        "targets": [node_ref(n) for n in targets],
        "caps": coord.put_caps(file_id, chunk_id, targets),
    }


async def init_many(
    coord: Coordinator, reqs: Sequence[UploadRequest], tenant: str
) -> list[dict[str, Any]]:
    """Coordinator.init_upload for many files, with one read of nodes and owned chunks."""
    live = await coord.writable_nodes()
    live_ids = {n.node_id for n in live}
    per_file = [distinct_chunks(r.manifest) for r in reqs]
    union = list({c for chunks in per_file for c in chunks})
    owned = await coord.meta.owned_chunks(tenant, union)
    locations = await coord.meta.get_locations(list(owned)) if owned else {}
    held = {c for c in owned if len(locations[c] & live_ids) >= coord.rf}
    plans = []
    records: list[tuple[FileRecord, Sequence[ManifestEntry]]] = []
    for req, chunks in zip(reqs, per_file, strict=True):
        file_id = new_file_id()
        upload = [
            _plan_entry(coord, file_id, c, size, live)
            for c, size in chunks.items()
            if c not in held
        ]
        rec = FileRecord(
            file_id=file_id,
            name=req.name,
            size=req.size,
            sha256=req.sha256,
            chunker=req.chunker,
            tenant=tenant,
            created_at=coord.clock(),
            chunk_count=len(req.manifest),
        )
        records.append((rec, req.manifest))
        plans.append(
            {
                "file_id": file_id,
                "replication_factor": coord.rf,
                "chunks_total": len(req.manifest),
                "chunks_distinct": len(chunks),
                "upload": upload,
            }
        )
    # one metadata write (one SQLite transaction) for the whole batch
    await coord.meta.create_files(records)
    return plans


async def finalize_many(
    coord: Coordinator, items: Sequence[tuple[str, Mapping[str, object]]], tenant: str
) -> list[dict[str, Any]]:
    """Coordinator.finalize_upload for many files: the same checks, one has-chunks round."""
    results: list[dict[str, Any] | None] = [None] * len(items)
    pending: list[tuple[int, FileRecord, dict[str, int]]] = []
    for i, (file_id, _receipts) in enumerate(items):
        try:
            rec = await coord.meta.get_file(file_id, tenant)
        except DfsError as exc:
            results[i] = _error(file_id, exc)
            continue
        if rec.state == FILE_COMPLETE:
            results[i] = file_body(rec)
            continue
        pending.append((i, rec, distinct_chunks(await coord.meta.get_manifest(file_id))))
    union: dict[str, int] = {}
    for _i, _rec, chunks in pending:
        union.update(chunks)
    owned = await coord.owned_for_finalize(tenant, list(union)) if union else set()
    live = await coord.live_nodes()
    holders = await coord.holders(union, live) if union else {}
    ready: list[int] = []
    for i, rec, chunks in pending:
        try:
            coord.check_upload_age(rec)
            coord.check_receipts(rec, chunks, items[i][1], owned)
            coord.check_copies(chunks, holders)
            ready.append(i)
        except DfsError as exc:
            results[i] = _error(rec.file_id, exc)
    # the files that passed every check commit together (one SQLite transaction)
    ids = [items[i][0] for i in ready]
    committed = await coord.meta.commit_files(ids, coord.clock()) if ids else []
    for i, file_id, done in zip(ready, ids, committed, strict=True):
        results[i] = (
            file_body(done) if done else _error(file_id, FileNotFound(f"no file {file_id}"))
        )
    return [r for r in results if r is not None]


async def resume(
    coord: Coordinator, file_id: str, receipts: Mapping[str, object], tenant: str
) -> dict[str, Any]:
    """A fresh plan for the caller's own pending upload ``file_id``: the chunks it has not
    proven (receipt for this file id, or already owned) or whose copies are not on live
    nodes."""
    rec = await coord.meta.get_file(file_id, tenant)
    if rec.state == FILE_COMPLETE:
        raise Conflict(f"file {file_id} is already complete")
    manifest: list[ManifestEntry] = await coord.meta.get_manifest(file_id)
    chunks = distinct_chunks(manifest)
    owned = await coord.meta.owned_chunks(tenant, list(chunks))
    secret = coord.cfg.cluster_secret
    proven = {
        c for c in chunks if c in owned or auth.receipt_ok(secret, receipts.get(c), file_id, c)
    }
    live = await coord.writable_nodes()
    held = await coord.holders({c: chunks[c] for c in proven}, live) if proven else {}
    upload = [
        _plan_entry(coord, file_id, c, size, live)
        for c, size in chunks.items()
        if not (c in proven and len(held[c]) >= coord.rf)
    ]
    return {
        "file_id": file_id,
        "replication_factor": coord.rf,
        "chunks_total": len(manifest),
        "chunks_distinct": len(chunks),
        "upload": upload,
        "resumed": True,
    }


async def init_uploads(request: web.Request) -> web.Response:
    body = await read_json(request, protocol.MAX_JSON_BODY)
    files = _list(body, "files")
    reqs = []
    for i, f in enumerate(files):
        if not isinstance(f, dict):
            raise InvalidRequest(f"files[{i}] must be an object")
        reqs.append(UploadRequest.parse(f))
    plans = await init_many(request.app[COORDINATOR], reqs, principal(request).tenant)
    return web.json_response({"uploads": plans}, status=201)


async def finalize_uploads(request: web.Request) -> web.Response:
    body = await read_json(request, protocol.MAX_JSON_BODY)
    items = []
    for i, u in enumerate(_list(body, "uploads")):
        if not isinstance(u, dict):
            raise InvalidRequest(f"uploads[{i}] must be an object")
        items.append((parse_file_id(u.get("file_id")), _receipts(u.get("receipts"))))
    files = await finalize_many(request.app[COORDINATOR], items, principal(request).tenant)
    return web.json_response({"files": files})


async def resume_upload(request: web.Request) -> web.Response:
    body = await read_json(request, protocol.MAX_JSON_BODY)
    file_id = parse_file_id(body.get("file_id"))
    plan = await resume(
        request.app[COORDINATOR],
        file_id,
        _receipts(body.get("receipts")),
        principal(request).tenant,
    )
    return web.json_response(plan)


async def download_plans(request: web.Request) -> web.Response:
    body = await read_json(request, 4 * protocol.MIB)
    ids = [parse_file_id(f) for f in _list(body, "file_ids")]
    coord = request.app[COORDINATOR]
    tenant = principal(request).tenant
    sem = asyncio.Semaphore(8)

    async def one(file_id: str) -> dict[str, Any]:
        async with sem:
            try:
                return await coord.download_plan(file_id, tenant)
            except DfsError as exc:
                return _error(file_id, exc)

    return web.json_response({"plans": await asyncio.gather(*(one(f) for f in ids))})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(protocol.INIT_UPLOADS, init_uploads)
    r.add_post(protocol.FINALIZE_UPLOADS, finalize_uploads)
    r.add_post(protocol.RESUME_UPLOAD, resume_upload)
    r.add_post(protocol.DOWNLOAD_PLANS, download_plans)
