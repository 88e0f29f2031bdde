"""The API's routes for paged uploads (``dfs.api.paged_uploads``): a file of any number of
chunks, planned, proven and committed page by page.

| method | path                    | body                                     | answer                 |
|--------|-------------------------|------------------------------------------|------------------------|
| POST   | /paged-upload           | ``{"name", "chunker", "mode"?, "mtime"?, "for_object"?}`` | 201 ``{"file_id", "replication_factor", "max_page_chunks"}`` |
| POST   | /paged-upload/page      | ``{"file_id", "page", "offset", "chunks", "receipts"?, "exclude_nodes"?}`` | 201 the page's plan (as /resume-upload's) with its ``packs`` (as /init-uploads') |
| POST   | /paged-upload/prove     | ``{"file_id", "page", "receipts", "exclude_nodes"?}`` | 200 ``{"file_id", "page", "proven": true}``; 409 incomplete_upload |
| POST   | /paged-upload/finalize  | ``{"file_id", "size", "sha256"}``         | 200 the committed file; 409 if a page is missing or unproven |

``chunks`` is a list of ``{"sha256", "size"}`` of at most ``MAX_PAGE_CHUNKS``, the first at
byte ``offset`` of the file (where the page before ended). ``exclude_nodes`` (as
``/resume-upload``'s): nodes the client's writes failed on; a page is planned around them,
and a proof does not ask them for their copies unless too few live nodes are left without
them to hold REPLICATION_FACTOR copies (then it asks every live node). ``for_object`` (as
``/init-upload``'s): the file is linked to an object version next (``dfs-client sync``), so
it is created marked and stays so through its commit: no lookup by content names it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dfs import protocol
from dfs.api import paged_uploads
from dfs.api.bodies import parse_for_object, parse_manifest, parse_mode, parse_mtime, parse_name
from dfs.api.context import COORDINATOR, big_body_slot, json_answer, tenant
from dfs.api.routes_batch import parse_exclude_nodes, parse_receipts
from dfs.chunking import ChunkerProfile
from dfs.errors import InvalidRequest
from dfs.ids import parse_file_id, parse_sha256
from dfs.meta.base import ManifestEntry
from dfs.server import json_response, read_json

_PAGE_BODY = 2 * protocol.MIB  # MAX_PAGE_CHUNKS chunk entries or receipts, with room


MAX_COUNT = (1 << 63) - 1
"""The largest page number, offset or size: what the stores' signed 64-bit integers hold
(JSON carries integers up to 2**64 - 1, which SQLite refused with an OverflowError: 500)."""


def _count(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise InvalidRequest(f"{key} must be an integer in [0, {MAX_COUNT}]")
    return value


def _page_entries(body: dict[str, Any]) -> list[ManifestEntry]:
    """The page's chunks, from its ``offset``; they must end within ``MAX_COUNT`` bytes."""
    entries = parse_manifest(body.get("chunks"), _count(body, "offset"), protocol.MAX_PAGE_CHUNKS)
    if entries and entries[-1].offset + entries[-1].size > MAX_COUNT:
        raise InvalidRequest(f"the page's chunks end past byte {MAX_COUNT}")
    return entries


async def start(request: web.Request) -> web.Response:
    body = await read_json(request, 64 * protocol.KIB)
    name = parse_name(body.get("name"), "name")
    chunker = str(ChunkerProfile.parse(str(body.get("chunker", ""))))
    mode, mtime = parse_mode(body.get("mode")), parse_mtime(body.get("mtime"))
    for_object = parse_for_object(body)
    coord = request.app[COORDINATOR]
    answer = await paged_uploads.start(
        coord, name, chunker, mode, mtime, tenant(request), for_object=for_object
    )
    return json_response(answer, status=201)


async def page(request: web.Request) -> web.Response:
    async with big_body_slot(request):
        body = await read_json(request, _PAGE_BODY)
        file_id = parse_file_id(body.get("file_id"))
        no = _count(body, "page")
        entries = _page_entries(body)
        receipts = parse_receipts(body.get("receipts"))
        exclude = parse_exclude_nodes(body.get("exclude_nodes"))
        plan = await paged_uploads.page(
            request.app[COORDINATOR], file_id, no, entries, receipts, tenant(request), exclude
        )
        return await json_answer(plan, entries=len(plan["upload"]), status=201)


async def prove(request: web.Request) -> web.Response:
    async with big_body_slot(request):
        body = await read_json(request, _PAGE_BODY)
        file_id = parse_file_id(body.get("file_id"))
        no = _count(body, "page")
        receipts = parse_receipts(body.get("receipts"))
        exclude = parse_exclude_nodes(body.get("exclude_nodes"))
        coord = request.app[COORDINATOR]
        answer = await paged_uploads.prove(coord, file_id, no, receipts, tenant(request), exclude)
        return json_response(answer)


async def finalize(request: web.Request) -> web.Response:
    body = await read_json(request, 64 * protocol.KIB)
    file_id = parse_file_id(body.get("file_id"))
    size = _count(body, "size")
    sha256 = parse_sha256(body.get("sha256"))
    coord = request.app[COORDINATOR]
    return json_response(await paged_uploads.finish(coord, file_id, size, sha256, tenant(request)))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(protocol.PAGED_UPLOAD, start)
    r.add_post(protocol.PAGED_UPLOAD_PAGE, page)
    r.add_post(protocol.PAGED_UPLOAD_PROVE, prove)
    r.add_post(protocol.PAGED_UPLOAD_FINALIZE, finalize)
