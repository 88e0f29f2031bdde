"""The web console's static files at ``/ui/`` (issue 15): ``GET /ui`` and ``GET /ui/{name}``.

The files are package data of ``dfs.console`` (``static/``, and the vendored libraries under
``static/vendor/PACKAGE/``, served at ``/ui/vendor/PACKAGE/NAME``), read once at startup;
only the names found there are served, with a fixed content type each, so no request can name a path.
They need no token (the auth middleware lets ``/ui`` through, see ``dfs.api.context``): they
hold no data, and every call the page makes carries the user's bearer token itself.

Each file is sent with a strict Content-Security-Policy (scripts, styles and connections of
this origin only, no inline script, no framing), ``X-Content-Type-Options: nosniff`` and
``Referrer-Policy: no-referrer``; ``dfs.api.user_content`` leaves that policy in place for
these answers and sandboxes every other one.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from dfs import protocol
from dfs.errors import NotFound

CONSOLE_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "worker-src 'self'",  # the hashing worker, a file of this origin (no blob: or data:)
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

STATIC_FILES = web.AppKey("console_files", dict[str, tuple[bytes, str]])


def _servable(folder: Traversable, prefix: str) -> dict[str, tuple[bytes, str]]:
    files: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            files[prefix + entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return files


def load_static() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, content type) of every servable file in ``dfs.console``'s ``static/``
    (and ``vendor/PACKAGE/NAME`` for each vendored package's files)."""
    static = resources.files("dfs.console").joinpath("static")
    files = _servable(static, "")
    vendor = static.joinpath("vendor")
    if vendor.is_dir():
        for package in vendor.iterdir():
            if package.is_dir():
                files.update(_servable(package, f"vendor/{package.name}/"))
    return files


def _headers(content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": CONSOLE_CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


async def console_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(protocol.CONSOLE + "/")


async def console_file(request: web.Request) -> web.Response:
    name = request.match_info.get("name") or "index.html"
    if "package" in request.match_info:
        name = f"vendor/{request.match_info['package']}/{name}"
    found = request.app[STATIC_FILES].get(name)
    if found is None:
        raise NotFound("no such file in the console")
    body, content_type = found
    return web.Response(body=body, headers=_headers(content_type))


def add_routes(app: web.Application) -> None:
    app[STATIC_FILES] = load_static()
    app.router.add_get(protocol.CONSOLE, console_root)
    app.router.add_get(protocol.CONSOLE + "/", console_file)
    app.router.add_get(protocol.CONSOLE_FILE, console_file)
    app.router.add_get(protocol.CONSOLE_VENDOR_FILE, console_file)
