"""The client's deferred loading of aiohttp's CA certificates (``dfs.transport.tls``) over a
real TLS server (dfs-s3 with a certificate authority made here): a fresh client process
imports aiohttp with no certificate loaded, trusts the CA named by ``SSL_CERT_FILE`` at its
first https request, and refuses a server signed by another CA (it fails closed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from dfs.localcluster import LocalCluster, wait_for
from tests.e2e.conftest import gateway_proc
from tests.e2e.test_s3_tls import make_tls

SCRIPT = """
import asyncio, sys
import dfs.client
import aiohttp, aiohttp.connector
ctx = aiohttp.connector._SSL_CONTEXT_VERIFIED
print("loaded at start", ctx.cert_store_stats()["x509_ca"])
async def main():
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(sys.argv[1]) as answer:
                print("status", answer.status)
        except aiohttp.ClientConnectorCertificateError:
            print("refused")
asyncio.run(main())
print("loaded after", ctx.cert_store_stats()["x509_ca"])
"""


def _client(url: str, ca: Path, tmp_path: Path) -> list[str]:
    env = {**os.environ, "SSL_CERT_FILE": str(ca), "SSL_CERT_DIR": str(tmp_path / "no-certs")}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, url], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_certificates_load_on_first_https_request(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    ca, cert, key = make_tls(tmp_path / "tls")
    other_ca, _, _ = make_tls(tmp_path / "other")
    proc = gateway_proc(sqlite_cluster)
    proc.env.update({"DFS_S3_TLS_CERT": str(cert), "DFS_S3_TLS_KEY": str(key)})
    proc.start()
    try:

        def listening() -> str | None:
            found = re.findall(r"listening on (https://\S+)", proc.log.read_text(errors="replace"))
            return found[-1] if found else None

        url = str(wait_for(listening, 30.0, "dfs-s3 to listen"))
        trusted = _client(url, ca, tmp_path)
        assert trusted[0] == "loaded at start 0"
        assert re.fullmatch(r"status \d{3}", trusted[1]), trusted
        assert trusted[2] == "loaded after 1"  # the one CA of SSL_CERT_FILE
        assert _client(url, other_ca, tmp_path)[1] == "refused"
    finally:
        proc.stop()
