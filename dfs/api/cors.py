"""CORS for browsers calling the API from other origins (``DFS_CORS_ORIGINS``; default none).

A small middleware rather than aiohttp-cors: the rules are few and must cover every route,
error answers included. Preflight requests (OPTIONS with Access-Control-Request-Method) are
answered here, before authentication: a browser never sends credentials on a preflight. For
an origin not in the list no CORS header is added, so the browser blocks the response.
Bearer tokens travel in the Authorization header, never in cookies, hence no
Allow-Credentials.
"""

from __future__ import annotations

from aiohttp import web

from dfs.server import Handler

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"  # PATCH: buckets and objects
ALLOW_HEADERS = "Authorization, Content-Type, Range"
EXPOSE_HEADERS = "Accept-Ranges, Content-Disposition, Content-Length, Content-Range, X-Dfs-Sha256"
MAX_AGE = "600"


def add_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    """Answer preflights and add CORS headers to every response (streamed ones too: the
    headers are set on ``on_response_prepare``, just before they are sent)."""
    if not origins:
        return
    allowed = frozenset(origins)
    any_origin = "*" in allowed

    def allow(origin: str | None) -> str | None:
        if origin is None:
            return None
        if any_origin:
            return "*"
        return origin if origin in allowed else None

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            resp = web.Response(status=204)
            if allow(request.headers.get("Origin")) is not None:
                resp.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
                resp.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
                resp.headers["Access-Control-Max-Age"] = MAX_AGE
            return resp
        return await handler(request)

    async def on_prepare(request: web.Request, resp: web.StreamResponse) -> None:
        origin = allow(request.headers.get("Origin"))
        if origin is not None:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            resp.headers["Vary"] = "Origin"

    app.middlewares.insert(0, preflight)
    app.on_response_prepare.append(on_prepare)
