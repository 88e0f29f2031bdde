"""The headers that keep user content from acting in a browser (issue 13's header rule).

dfs-api serves bytes that tenants uploaded (signed download URLs, ``/proxy-chunk-download``,
namespace objects at ``/objects/…``, public or shared ones without a token).
Opened in a browser, such bytes must never run as a page of the API's origin, whatever they
contain or however a browser might sniff them. So:

- every answer of the API carries ``X-Content-Type-Options: nosniff`` and
  ``Content-Security-Policy: sandbox; default-src 'none'`` (harmless on JSON answers, and
  error answers of the byte routes are covered too);
- answers carrying user bytes also carry ``Content-Disposition: attachment`` (the signed
  download sets one with the file's name; the others get a bare ``attachment``).

The headers are set on ``on_response_prepare``, just before they are sent, so streamed
answers get them as well.
"""

from __future__ import annotations

from aiohttp import web

from dfs import protocol

NOSNIFF = "nosniff"
SANDBOX = "sandbox; default-src 'none'"

_BYTE_ROUTES = (protocol.SIGNED_DOWNLOAD, protocol.PROXY_CHUNK_DOWNLOAD, protocol.OBJECTS_PREFIX)


def _carries_user_bytes(request: web.Request) -> bool:
    return request.path.startswith(_BYTE_ROUTES)


async def _on_prepare(request: web.Request, resp: web.StreamResponse) -> None:
    resp.headers["X-Content-Type-Options"] = NOSNIFF
    resp.headers["Content-Security-Policy"] = SANDBOX
    if _carries_user_bytes(request):
        resp.headers.setdefault("Content-Disposition", "attachment")


def add_content_headers(app: web.Application) -> None:
    app.on_response_prepare.append(_on_prepare)
