"""Virtual-host-style addressing: with ``DFS_S3_DOMAIN=s3.example.com``, a request to
``photos.s3.example.com/a/b.jpg`` addresses key ``a/b.jpg`` of bucket ``photos``, as it
does at ``s3.example.com/photos/a/b.jpg`` (path style, which keeps working for every Host).

The route modules register path-style routes only (``/{bucket}`` and ``/{bucket}/{key}``).
``add_virtual_hosts`` mirrors each of them, ``/{bucket}`` taken off, into a sub-app that
aiohttp matches on the Host ``*.DOMAIN`` before any path route; a middleware of the parent
app, first of all, puts the bucket named by the Host into ``match_info["bucket"]`` (so the
parent's other middlewares, like the multipart dispatch, see it too), where the handlers read
it in both styles. Routes added later by other modules are mirrored as long as they are registered
before ``add_virtual_hosts`` runs (``dfs.s3.app.make_app`` calls it last).

SigV4 needs nothing special: a virtual-host client signs the path as sent (without the
bucket) and the Host (with it), which is what ``dfs.s3.sigv4`` reads from the request.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from dfs.expect_continue import defer_continue
from dfs.s3.errors import Handler, S3Error, error_response
from dfs.s3.names import KEY_PATTERN

BUCKET = "/{bucket}"


def _virtual_path(formatter: str) -> str | None:
    """The path a path-style route has without its bucket; None for routes without one."""
    if formatter in (BUCKET, BUCKET + "/"):
        return "/"
    if formatter == BUCKET + "/{key}":
        return "/" + KEY_PATTERN
    return None


def bucket_of_host(host: str, domain: str) -> str | None:
    """The bucket a Host names under ``domain`` (the port ignored); None for other hosts."""
    name = host.rpartition(":")[0] if host.count(":") == 1 else host
    name = name.lower().rstrip(".")
    suffix = "." + domain.lower()
    if not name.endswith(suffix) or len(name) == len(suffix):
        return None
    return name[: -len(suffix)]


def _bucket_from_host(domain: str, sub: web.Application) -> Middleware:
    @web.middleware
    async def bucket_from_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        bucket = bucket_of_host(request.host, domain)
        routed = sub in request.match_info.apps  # aiohttp matched the Host to ``*.domain``
        if routed != (bucket is not None):
            err = S3Error(
                "InvalidRequest",
                400,
                f"the Host header names no bucket of *.{domain} this gateway can address "
                "(send the host name without a trailing dot, or use path-style requests)",
            )
            return error_response(err, request.path)
        if bucket is not None:
            request.match_info["bucket"] = bucket
        return await handler(request)

    return bucket_from_host


def add_virtual_hosts(app: web.Application, domain: str) -> None:
    """Serve ``BUCKET.domain`` as virtual-host-style addressing of ``app``'s bucket routes."""
    sub = web.Application()
    # on the parent, first: its own middlewares (the multipart dispatch) read the bucket too
    app.middlewares.insert(0, _bucket_from_host(domain, sub))
    for key in app:  # the services the handlers look up in request.app
        sub[key] = app[key]
    seen: set[tuple[str, str]] = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        formatter = str(info.get("formatter") or info.get("path") or "")
        path = _virtual_path(formatter)
        if path is None or (route.method, path) in seen:
            continue
        seen.add((route.method, path))
        sub.router.add_route(route.method, path, route.handler)
    defer_continue(sub)
    app.add_domain(f"*.{domain}", sub)
