"""Signed download URLs against a real dfs-api process (issue 16): HEAD answers headers and
logs nothing (every HEAD used to log an ERROR with a traceback), and a Range is served."""

from __future__ import annotations

import json
import random
import urllib.request

import pytest

from dfs import protocol
from dfs.localcluster import LocalCluster, http_json

pytestmark = pytest.mark.e2e


@pytest.mark.cluster(nodes=2, replication_factor=2)
@pytest.mark.parametrize("meta_url", ["sqlite"], indirect=True)
def test_head_and_range_on_a_signed_url_log_no_error(cluster: LocalCluster) -> None:
    api, token = cluster.api_url, cluster.admin_token
    data = random.Random(5).randbytes(3 * 1024 * 1024 + 11)
    req = urllib.request.Request(f"{api}{protocol.UPLOAD_FILE}?filename=f.bin", data=data)
    req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        file_id = json.loads(resp.read())["file_id"]
    url = http_json(f"{api}/download/{file_id}", token)["download_url"]
    for _ in range(3):
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Length"] == str(len(data))
            assert r.headers["Content-Disposition"].startswith("attachment")
            assert r.read() == b""
    ranged = urllib.request.Request(url, headers={"Range": "bytes=-100"})
    with urllib.request.urlopen(ranged, timeout=30) as r:
        assert r.status == 206
        assert r.read() == data[-100:]
    assert http_json(f"{api}{protocol.HEALTHZ}")["status"] == "ok"  # the log is written
    log = (cluster.base / "logs" / "api.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert " ERROR " not in log, log[-3000:]
