"""Requests to https URLs after aiohttp was imported without its CA loads (``dfs.transport.tls``).

Each case runs in a fresh interpreter (the import happens once per process), against an
aiohttp server on 127.0.0.1 serving a certificate signed by a certificate authority made
here, which ``SSL_CERT_FILE`` names as the system's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tls_certs import make_tls

SCRIPT = """
import asyncio, os, socket, ssl, sys
from dfs.transport.tls import CA_PATHS, import_aiohttp

before = {name: os.environ.get(name) for name in CA_PATHS}
import_aiohttp()
assert {name: os.environ.get(name) for name in CA_PATHS} == before, "variables not put back"

import aiohttp
from aiohttp import web
from dfs.errors import DfsError
from dfs.transport.http import make_session, request_json

async def main() -> None:
    app = web.Application()
    app.router.add_get("/", lambda request: web.json_response({"ok": True}))
    runner = web.AppRunner(app)
    await runner.setup()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(sys.argv[1], sys.argv[2])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock, ssl_context=served).start()
    url = f"https://127.0.0.1:{sock.getsockname()[1]}/"

    async def moved(request):
        raise web.HTTPMovedPermanently(url)

    plain = web.Application()  # an http URL whose answer redirects to the https one
    plain.router.add_get("/", moved)
    plain_runner = web.AppRunner(plain)
    await plain_runner.setup()
    plain_sock = socket.socket()
    plain_sock.bind(("127.0.0.1", 0))
    await web.SockSite(plain_runner, plain_sock).start()
    http_url = f"http://127.0.0.1:{plain_sock.getsockname()[1]}/"
    try:
        async with make_session() as session:
            for what, asked in (("dfs", url), ("redirected", http_url)):
                try:
                    print(what, await request_json(session, "GET", asked))
                except DfsError as exc:
                    print(what, "refused", "CERTIFICATE_VERIFY_FAILED" in exc.message)
            try:
                async with session.get(url) as resp:  # aiohttp's default context
                    print("default", resp.status)
            except aiohttp.ClientConnectorCertificateError:
                print("default refused")
    finally:
        await runner.cleanup()
        await plain_runner.cleanup()

asyncio.run(main())
"""


def _run(tmp_path: Path, trusted: bool) -> list[str]:
    ca, cert, key = make_tls(tmp_path / "tls")
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    # the made CA as the system's certificates, or a file that trusts nothing
    other = tmp_path / "none.pem"
    other.write_text("")
    env["SSL_CERT_FILE"] = str(ca if trusted else other)
    env["SSL_CERT_DIR"] = str(tmp_path / "no-such-dir")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(cert), str(key)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
def test_https_requests_check_the_certificate_against_the_cas_named_then(
    tmp_path: Path, trusted: bool
) -> None:
    """dfs's requests load the CA certificates at their first https request and check the
    server against them (a certificate no trusted CA signed is refused), also where an http
    URL redirects to an https one; aiohttp's own default contexts, made during the import,
    trust nothing: closed, never open."""
    got = _run(tmp_path, trusted)
    if trusted:
        assert got == ["dfs {'ok': True}", "redirected {'ok': True}", "default refused"]
    else:
        assert got == ["dfs refused True", "redirected refused True", "default refused"]
