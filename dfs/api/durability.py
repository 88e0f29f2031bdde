"""API routes for deleting files and watching repair; the background passes' wiring.

| method | path             | answer                                                      |
|--------|------------------|-------------------------------------------------------------|
| DELETE | /file/{file_id}  | 200 the file's metadata with ``"state": "deleted"``; 404 for |
|        |                  | unknown ids and other tenants' files                        |
| GET    | /admin/repair    | the last repair pass's progress and its lease holder (admin) |

The logic lives in ``dfs.api.maintenance``; this module parses requests and starts the
repair and garbage-collection loops beside the app.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from dfs import protocol
from dfs.api.maintenance import Maintenance, maintenance_loop
from dfs.ids import parse_file_id

MAINTENANCE = web.AppKey("maintenance", Maintenance)


async def delete_file(request: web.Request) -> web.Response:
    from dfs.api.app import principal  # the app module imports this one to add its routes

    file_id = parse_file_id(request.match_info["file_id"])
    body = await request.app[MAINTENANCE].delete_file(file_id, principal(request).tenant)
    return web.json_response(body)


async def repair_status(request: web.Request) -> web.Response:
    from dfs.api.app import admin

    admin(request)
    return web.json_response(await request.app[MAINTENANCE].status())


def add_routes(app: web.Application, maintenance: Maintenance) -> None:
    app[MAINTENANCE] = maintenance
    app.router.add_delete(protocol.FILE, delete_file)
    app.router.add_get(protocol.ADMIN_REPAIR, repair_status)


def start_loops(maintenance: Maintenance) -> list[asyncio.Task[None]]:
    cfg = maintenance.cfg
    return [
        asyncio.create_task(
            maintenance_loop(maintenance.repair_once, cfg.repair_interval, "repair")
        ),
        asyncio.create_task(maintenance_loop(maintenance.gc_once, cfg.gc_interval, "gc")),
    ]


async def stop_loops(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
