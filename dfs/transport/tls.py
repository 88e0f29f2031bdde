"""The TLS context of dfs's requests to https URLs, with the system's CA certificates loaded
when the first such request starts, not when aiohttp is imported.

aiohttp builds two default TLS contexts as it is imported (``aiohttp.connector``), each
loading the system's CA certificates: 25-40 ms each here, about a fifth of the import, and
paid by every ``dfs-client`` run, whose API and nodes are plain HTTP as a rule (a cluster's
own network, or TLS ended at a load balancer). So:

- ``import_aiohttp`` imports it with OpenSSL's default certificate file and directory
  pointed at nothing (``SSL_CERT_FILE``, ``SSL_CERT_DIR``; put back as they were at once).
  Those two default contexts then trust no CA, so a request that used them would fail its
  certificate check: closed, never open;
- no request of dfs's uses them: ``dfs.transport.http.request`` gives every https request
  of a session ``make_session`` made ``verified_context()``, made once per process (``ssl.create_default_context``, in a
  worker thread: it reads files) when the first one starts, with the CA certificates that
  ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` name by then, as aiohttp's would.

The console script calls ``import_aiohttp`` before its client library imports aiohttp; a
process that imports aiohttp otherwise (the servers, tests, code embedding the library)
keeps aiohttp's defaults, and its https requests get ``verified_context()`` all the same.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import ssl
import sys
import threading

CA_PATHS = ("SSL_CERT_FILE", "SSL_CERT_DIR")
"""The variables through which OpenSSL finds the system's CA certificates."""

_context: ssl.SSLContext | None = None
_making = threading.Lock()


def import_aiohttp() -> None:
    """Import aiohttp without the CA loads of its import-time default contexts (see the
    module's docstring); nothing when it is imported already."""
    if "aiohttp" in sys.modules:
        return
    saved = {name: os.environ.get(name) for name in CA_PATHS}
    os.environ.update(dict.fromkeys(CA_PATHS, os.devnull))
    try:
        importlib.import_module("aiohttp")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _made() -> ssl.SSLContext:
    """The process's context for https requests, made at the first call (blocking)."""
    global _context
    with _making:  # one load of the certificates, whichever thread asks first
        if _context is None:
            context = ssl.create_default_context()
            context.set_alpn_protocols(["http/1.1"])  # what aiohttp's own contexts offer
            _context = context
        return _context


async def verified_context() -> ssl.SSLContext:
    """The TLS context for a request to an https URL: the server's certificate checked
    against the system's CA certificates and its name checked, as aiohttp's default does."""
    return _context if _context is not None else await asyncio.to_thread(_made)
