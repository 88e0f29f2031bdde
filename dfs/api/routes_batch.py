"""The API's routes for many files per request, and for resuming an interrupted upload.

| method | path               | body                                    | answer                              |
|--------|--------------------|-----------------------------------------|-------------------------------------|
| POST   | /init-uploads      | ``{"files": [init-upload body, ...], "exclude_nodes"?}`` | 201 ``{"uploads": [plan, ...], "packs"}``; a plan with nothing to send may come committed (``"state": "complete"``) |
| POST   | /finalize-uploads  | ``{"uploads": [{"file_id", "receipts"}], "exclude_nodes"?}`` | 200 ``{"files": [metadata or {"file_id", "error"}]}`` |
| POST   | /resume-upload     | ``{"file_id", "receipts", "exclude_nodes"?}`` | 200 a plan for the same pending file: only chunks neither proven nor held |
| POST   | /download-plans    | ``{"file_ids": [...]}``                 | 200 ``{"plans": [plan or {"file_id", "error"}]}`` |

At most ``MAX_BATCH_FILES`` files per request, and no more chunks per request than one file
may have (``MAX_CHUNKS_PER_FILE``): /init-uploads refuses more (413), /download-plans
answers the files past it with an error entry to ask for again (``dfs.api.download_plans``).
Big plans are built and serialized off the event loop. A directory of thousands of small files thus
costs a few requests per thousand files instead of several per file: one metadata read of
the live nodes and of the tenant's chunks per batch, and one has-chunks call per node per
10,000 chunks at finalize.

A file of ``/init-uploads`` with nothing to send (every chunk one the tenant references,
with its copies on live nodes: an unchanged file backed up again) is committed in the same
request, under finalize's own checks (the live nodes are asked for the copies, as finalize
asks them): its plan is only ``{"file_id", "state": "complete", "upload": []}`` (the client
sent the rest of its metadata; a batch of unchanged files answers a few dozen bytes per file
to decode, not a file body each) and the client skips its finalize (a finalize of it
answers its metadata). A backup of unchanged files thus costs one request per batch, not two.

The plans' small chunks also come grouped in ``packs`` (``dfs.api.upload_packs``): one
``/store-chunks`` request each, under one capability the node checks before the body; their
plan entries carry no per-chunk ``caps`` (a client sending one alone asks ``/resume-upload``).
A file committed by its plan is recorded complete in one step (``create_and_commit_files``),
never pending first.

Resume keeps the Dropship defence intact: receipts are bound to the pending file id they were
minted for, and ``resume-upload``/``finalize`` only accept them for that same file id, which
``get_file(file_id, tenant)`` proves is the caller's own. A chunk is skipped only if it comes
with a valid receipt for this file (or the tenant already owns it) and live nodes hold its
copies; everything else is planned again with fresh capabilities.

``exclude_nodes`` (optional, at most ``MAX_EXCLUDE_NODES``): nodes the client's upload just
failed on (a timeout, a refused connection). They are left out of this one plan, as targets
and as holders asked for copies, so an upload in flight re-plans around a dead or hung node
at once instead of waiting for its heartbeat to expire. Nothing is recorded: the list steers
only the caller's own pending upload, never another tenant's placement. On
``/init-uploads`` the batch's chunks are placed on the other nodes, and on
``/finalize-uploads`` (and ``/finalize-upload``) those nodes are not asked for copies, unless
fewer than the replication factor would be left (``finalizing.excluding``).

These routes parse HTTP and call the same Coordinator methods as the one-file routes
(``init_uploads``, ``finalize_uploads``, ``resume_upload``, ``download_plans``): one set of
rules for planning and committing, whatever the number of files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web

from dfs import protocol
from dfs.api import download_plans as planner
from dfs.api.bodies import UploadRequest
from dfs.api.context import (
    COORDINATOR,
    big_answer_slot,
    big_body_slot,
    body_slot,
    json_answer,
    tenant,
)
from dfs.api.upload_packs import plan_packs
from dfs.errors import InvalidRequest, PayloadTooLarge
from dfs.ids import parse_file_id, parse_node_id
from dfs.server import read_json


def _list(body: dict[str, Any], key: str) -> list[Any]:
    items = body.get(key)
    if not isinstance(items, list) or not 0 < len(items) <= protocol.MAX_BATCH_FILES:
        raise InvalidRequest(f"{key} must be a list of 1-{protocol.MAX_BATCH_FILES} entries")
    return items


def parse_receipts(value: object) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("receipts must be an object of chunk id -> receipt")
    return value


def _objects(body: dict[str, Any], key: str) -> Iterator[dict[str, Any]]:
    for i, item in enumerate(_list(body, key)):
        if not isinstance(item, dict):
            raise InvalidRequest(f"{key}[{i}] must be an object")
        yield item


def _parse_files(body: dict[str, Any]) -> list[UploadRequest]:
    reqs = [UploadRequest.parse(f) for f in _objects(body, "files")]
    total = sum(len(r.manifest) for r in reqs)
    if total > protocol.MAX_CHUNKS_PER_FILE:
        # one request plans no more than one file of the largest size does
        raise PayloadTooLarge(
            f"the files list {total} chunks in all, at most {protocol.MAX_CHUNKS_PER_FILE} "
            "per request: send them in several requests"
        )
    return reqs


async def init_uploads(request: web.Request) -> web.Response:
    async with big_body_slot(request):
        body = await read_json(request, protocol.MAX_JSON_BODY)
        reqs = await asyncio.to_thread(_parse_files, body)
        exclude = parse_exclude_nodes(body.get("exclude_nodes"))
        coord = request.app[COORDINATOR]
        plans = await coord.init_uploads(reqs, tenant(request), commit_held=True, exclude=exclude)
        entries = sum(len(p["upload"]) for p in plans)
        packs = await asyncio.to_thread(plan_packs, coord, plans)
        answer = {"uploads": plans, "packs": packs}
        return await json_answer(answer, entries=2 * entries, status=201)


async def finalize_uploads(request: web.Request) -> web.Response:
    async with big_body_slot(request):
        body = await read_json(request, protocol.MAX_JSON_BODY)
        items = [
            (parse_file_id(u.get("file_id")), parse_receipts(u.get("receipts")))
            for u in _objects(body, "uploads")
        ]
        exclude = parse_exclude_nodes(body.get("exclude_nodes"))
        coord = request.app[COORDINATOR]
        files = await coord.finalize_uploads(items, tenant(request), exclude)
        return await json_answer({"files": files}, entries=len(files))


def parse_exclude_nodes(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or len(value) > protocol.MAX_EXCLUDE_NODES:
        raise InvalidRequest(
            f"exclude_nodes must be a list of at most {protocol.MAX_EXCLUDE_NODES} node ids"
        )
    return frozenset(parse_node_id(n, "exclude_nodes entry") for n in value)


async def resume_upload(request: web.Request) -> web.Response:
    async with big_body_slot(request):
        body = await read_json(request, protocol.MAX_JSON_BODY)
        file_id = parse_file_id(body.get("file_id"))
        receipts = parse_receipts(body.get("receipts"))
        exclude = parse_exclude_nodes(body.get("exclude_nodes"))
        coord = request.app[COORDINATOR]
        plan = await coord.resume_upload(file_id, receipts, tenant(request), exclude)
        return await json_answer(plan, entries=len(plan["upload"]))


PLANS_BODY = 256 * protocol.KIB
"""Bytes of a /download-plans body: 1000 file ids, each fully escaped (``\\u0030``...), fit
~220 KiB. Kept under ``server.JSON_IN_THREAD``, so its read needs no big-request slot, only
a body slot, let go once the ids are parsed (the answer may take a big one,
``big_answer_slot``): a 4 MiB body of empty JSON objects cost ~140 MiB parsed."""


async def download_plans(request: web.Request) -> web.Response:
    async with body_slot(request):
        body = await read_json(request, PLANS_BODY)
        ids = [parse_file_id(f) for f in _list(body, "file_ids")]
        batched = planner.parse_flag(body, "batched")
        compact = planner.parse_flag(body, "compact")
        del body
    coord = request.app[COORDINATOR]
    sel = await planner.select(coord, ids, tenant(request), batched=batched, compact=compact)
    async with big_answer_slot(request, sel.chunks):
        return await json_answer(await planner.answer(coord, sel), entries=sel.chunks)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(protocol.INIT_UPLOADS, init_uploads)
    r.add_post(protocol.FINALIZE_UPLOADS, finalize_uploads)
    r.add_post(protocol.RESUME_UPLOAD, resume_upload)
    r.add_post(protocol.DOWNLOAD_PLANS, download_plans)
