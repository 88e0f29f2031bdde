"""``sync`` of a file that goes page by page (``dfs.client.paged_upload.wants_pages``) to a
key, through real processes on each metadata backend: the file uploads through
``/paged-upload`` for the object (``"for_object": true``) and downloads byte-identical
through its object, with the CLI (the tenant's own bucket: the download pipeline) and with
a plain GET of ``/objects/...`` (streamed and verified by the API).

The CLI only cuts fixed chunks of at least 4 KiB, so the syncing client is a small program
on the ``dfs.client`` library with the paged-upload tests' tiny FastCDC profile: a 9 MiB
file may then hold more chunks than one ``/init-upload`` takes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from dfs import protocol
from dfs.localcluster import LocalCluster
from tests.e2e.conftest import CLI_TIMEOUT
from tests.e2e.test_namespace import as_user, tenant
from tests.integration.test_paged_upload import periodic

pytestmark = pytest.mark.e2e

TINY = "fastcdc:64:256:1024"
SIZE = 9 * protocol.MIB

SYNCER = """
import asyncio, json, os, sys
from pathlib import Path
from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.paged_upload import wants_pages

async def main() -> None:
    src, profile = Path(sys.argv[2]), ChunkerProfile.parse(sys.argv[5])
    assert wants_pages(src.stat().st_size, profile)
    async with Client(sys.argv[1], token=os.environ["DFS_TOKEN"]) as c:
        sent = await c.upload_to([src], sys.argv[3], sys.argv[4], profile=profile)
    print(json.dumps(sent.done))

asyncio.run(main())
"""


def test_sync_of_a_file_that_needs_pages_round_trips(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = tenant(cluster, "alice")
    monkeypatch.setenv("DFS_API_URL", cluster.api_url)
    as_user(alice, "mb", "big/")
    src = tmp_path / "huge.bin"
    data = periodic(src, SIZE)
    synced = subprocess.run(
        [sys.executable, "-c", SYNCER, cluster.api_url, str(src), "big", "h/huge.bin", TINY],
        env={**os.environ, "DFS_TOKEN": alice, "DFS_CACHE_DIR": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert synced.returncode == 0, synced.stderr
    [obj] = json.loads(synced.stdout)
    assert (obj["key"], obj["size"]) == ("h/huge.bin", SIZE)
    out = tmp_path / "out.bin"
    as_user(alice, "download", "big/h/huge.bin", str(out))
    assert out.read_bytes() == data
    req = urllib.request.Request(
        f"{cluster.api_url}/objects/big/h/huge.bin", headers={"Authorization": f"Bearer {alice}"}
    )
    with urllib.request.urlopen(req, timeout=CLI_TIMEOUT) as r:
        assert r.read() == data
