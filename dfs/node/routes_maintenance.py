"""The storage node's maintenance routes: what the API's repair and garbage collection ask.

| method | path          | capability              | answer                                    |
|--------|---------------|-------------------------|-------------------------------------------|
| POST   | /delete-chunk | ``delete`` for the chunk | ``{"deleted": bool}``; ``min_age`` keeps a |
|        |               |                         | copy written or re-sent more recently      |
| POST   | /copy-chunk   | ``copy``, bound to the  | 201 ``{"node_id"}`` once the target holds  |
|        |               | target node id and URL  | a verified copy; 404 if this copy is bad   |
| GET    | /quarantined  | ``status``              | ``{"chunk_ids": [...]}`` quarantined here  |
|        |               |                         | and not stored again since                 |
| GET    | /list-chunks  | ``list``                | ``{"chunks": [[id, age_s]...], "next"}``:  |
|        |               |                         | stored ids after ``after``, ascending      |

Every operation is one the API asked for with a capability it signed: a node never deletes
or copies on its own. The scrubber (``dfs.node.scrubber``) only quarantines; the API learns of
quarantined copies from ``/quarantined`` and repairs them with ``/copy-chunk``.
"""

from __future__ import annotations

from aiohttp import web

from dfs import auth, protocol
from dfs.errors import InvalidRequest
from dfs.ids import parse_chunk_id, parse_node_id
from dfs.node.context import FORWARDER, STORE, authorize, int_query
from dfs.server import json_response, query_param, read_json


async def delete_chunk(request: web.Request) -> web.Response:
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    text = request.query.get("min_age", protocol.delete_cap_extra(0.0))
    authorize(request, auth.OP_DELETE, chunk_id, extra=text)  # binds min_age's exact text
    try:
        min_age = float(text)
    except ValueError:
        raise InvalidRequest("min_age must be a number of seconds") from None
    if not 0.0 <= min_age < float("inf"):
        raise InvalidRequest("min_age must be a non-negative number of seconds")
    deleted = await request.app[STORE].delete_if_idle(chunk_id, min_age)
    return json_response({"deleted": deleted})


async def copy_chunk(request: web.Request) -> web.Response:
    """Send a verified copy of a chunk to the one node the capability names (repair)."""
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    body = await read_json(request, 4096)
    target_id = parse_node_id(body.get("target_id"), "target_id")
    target_url = body.get("target_url")
    if not isinstance(target_url, str) or not target_url.startswith(("http://", "https://")):
        raise InvalidRequest("target_url must be an http(s) URL")
    extra = protocol.copy_cap_extra(target_id, target_url)
    authorize(request, auth.OP_COPY, chunk_id, extra=extra)
    data = await request.app[STORE].get(chunk_id)  # verified; a bad copy is quarantined: 404
    await request.app[FORWARDER].fan_out(chunk_id, data, [(target_id, target_url)])
    return json_response({"node_id": target_id}, status=201)


async def quarantined(request: web.Request) -> web.Response:
    authorize(request, auth.OP_STATUS)
    return json_response({"chunk_ids": await request.app[STORE].quarantined()})


async def list_chunks(request: web.Request) -> web.Response:
    authorize(request, auth.OP_LIST)
    after = request.query.get("after", "")
    if after:
        after = parse_chunk_id(after, "after")
    limit = int_query(request, "limit", 1000)
    if not 0 < limit <= protocol.MAX_LIST_CHUNKS:
        raise InvalidRequest(f"limit must be in [1, {protocol.MAX_LIST_CHUNKS}]")
    # one id more than the page: ``next`` is null only when no id follows, not whenever a
    # page came back short (an inventory reads a null ``next`` as the end of the node's
    # ids and forgets every recorded copy after them)
    rows = await request.app[STORE].list_chunks(after, limit + 1)
    page = rows[:limit]
    return json_response(
        {
            "chunks": [[c, round(age, 3)] for c, age in page],
            "next": page[-1][0] if len(rows) > limit else None,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post(protocol.DELETE_CHUNK, delete_chunk)
    app.router.add_post(protocol.COPY_CHUNK, copy_chunk)
    app.router.add_get(protocol.QUARANTINED, quarantined)
    app.router.add_get(protocol.LIST_CHUNKS, list_chunks)
