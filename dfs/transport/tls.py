"""Loading the CA certificates of aiohttp's default TLS contexts when one is first used.

aiohttp builds two ``SSLContext`` objects when ``aiohttp.connector`` is imported, and loading
the system's CA bundle into each (``set_default_verify_paths``) costs some 40 ms of CPU at
every start of the client (a quarter of ``dfs-client upload``'s CPU for a backup of unchanged
files), though a cluster on http:// never makes a TLS connection. aiohttp has no option to
skip them, so ``import_aiohttp`` imports it with that call recorded instead of run: each
context it was called on loads its certificates the first time it wraps a connection
(``wrap_bio``, which asyncio calls, or ``wrap_socket``), before any handshake.

It fails closed: a context that missed its load would trust no CA and refuse every
certificate, never accept one it should not. Only the contexts built during that import are
deferred; a process that imported aiohttp before is left as it is.
"""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

_WRAPS = ("wrap_bio", "wrap_socket")
_lock = threading.Lock()


def _load(ctx: ssl.SSLContext) -> None:
    """The deferred ``set_default_verify_paths`` of ``ctx``, once."""
    with _lock:
        if "wrap_bio" not in vars(ctx):
            return  # loaded by another thread
        for name in _WRAPS:
            delattr(ctx, name)
        ctx.set_default_verify_paths()


def _deferred(ctx: ssl.SSLContext, name: str) -> Callable[..., Any]:
    def wrap(*args: Any, **kwargs: Any) -> Any:
        _load(ctx)
        return getattr(ctx, name)(*args, **kwargs)

    return wrap


def import_aiohttp() -> None:
    """Import ``aiohttp.connector`` with its default contexts' certificates loaded on their
    first use rather than now (see the module docstring)."""
    if "aiohttp.connector" in sys.modules:
        return
    cls = ssl.SSLContext
    pending: list[ssl.SSLContext] = []

    def record(self: ssl.SSLContext) -> None:
        pending.append(self)

    # replaced on the Python subclass only while aiohttp imports, then put back as it was
    # (inherited from _ssl's class, on the Pythons this was written for)
    own = vars(cls).get("set_default_verify_paths")
    cls.set_default_verify_paths = record  # type: ignore[method-assign]
    try:
        import aiohttp.connector  # noqa: F401
    finally:
        if own is None:
            del cls.set_default_verify_paths
        else:
            cls.set_default_verify_paths = own  # type: ignore[method-assign]
    for ctx in pending:
        for name in _WRAPS:
            setattr(ctx, name, _deferred(ctx, name))
