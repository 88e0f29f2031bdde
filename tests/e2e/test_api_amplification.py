"""No amplification by any tenant (issue 12 item 3), against a real dfs-api process.

One /download-plans request naming a 100,000-chunk file's id 1000 times (the most a request
may name) used to build and send 1000 plans of ~140 MiB each; one /init-uploads of 100,000
chunks planned on the event loop. Now the answer holds at most MAX_CHUNKS_PER_FILE chunks in
all, and while the largest requests of both kinds are in progress /healthz keeps answering
within 5 s (the worst latency seen is printed)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dfs import protocol
from dfs.localcluster import LocalCluster, http_json

pytestmark = pytest.mark.e2e

CHUNKS = protocol.MAX_CHUNKS_PER_FILE
HEALTHZ_DEADLINE = 5.0
BIG_REQUEST_TIMEOUT = 300.0


def post(
    url: str, token: str, body: bytes, timeout: float, method: str = "POST"
) -> tuple[int, bytes]:
    """The raw answer (parsed later: parsing here would compete with the prober for the GIL)."""
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header(
        "Content-Type", "application/json" if method == "POST" else "application/octet-stream"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def commit_many_chunk_file(api: str, token: str) -> str:
    """A complete file of CHUNKS one-byte chunks (all the same chunk: one to send)."""
    chunk = b"a"
    chunk_id = hashlib.sha256(chunk).hexdigest()
    plan_body = {
        "name": "many-chunks",
        "size": CHUNKS,
        "sha256": hashlib.sha256(chunk * CHUNKS).hexdigest(),
        "chunker": "fixed:65536",
        "chunks": [{"sha256": chunk_id, "size": 1}] * CHUNKS,
    }
    status, raw = post(f"{api}{protocol.INIT_UPLOAD}", token, json.dumps(plan_body).encode(), 120)
    assert status == 201, raw[:300]
    file_id = json.loads(raw)["file_id"]
    query = f"?chunk_id={chunk_id}&file_id={file_id}"
    status, raw = post(f"{api}{protocol.PROXY_CHUNK_UPLOAD}{query}", token, chunk, 60, "PUT")
    assert status == 201, raw[:300]
    receipts = {chunk_id: json.loads(raw)["receipt"]}
    done = http_json(
        f"{api}{protocol.FINALIZE_UPLOAD}", token, 120, {"file_id": file_id, "receipts": receipts}
    )
    assert done["state"] == "complete"
    assert done["chunks"] == CHUNKS
    return str(file_id)


def biggest_init_uploads() -> bytes:
    """CHUNKS distinct chunks (each needs placement and capabilities), in 1000 files."""
    per_file = CHUNKS // protocol.MAX_BATCH_FILES
    files = []
    for f in range(protocol.MAX_BATCH_FILES):
        ids = [hashlib.sha256(f"{f}-{i}".encode()).hexdigest() for i in range(per_file)]
        files.append(
            {
                "name": f"f{f}",
                "size": per_file,
                "sha256": "0" * 64,
                "chunker": "fixed:65536",
                "chunks": [{"sha256": c, "size": 1} for c in ids],
            }
        )
    return json.dumps({"files": files}).encode()


class Prober:
    """GET /healthz back to back on fresh connections until stopped; the worst latency."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.worst = 0.0
        self.count = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            with urllib.request.urlopen(
                f"{self.api}{protocol.HEALTHZ}", timeout=HEALTHZ_DEADLINE
            ) as r:
                assert r.status == 200
            self.worst = max(self.worst, time.monotonic() - started)
            self.count += 1
            self.stop.wait(0.05)


@pytest.mark.cluster(nodes=2, replication_factor=2)
@pytest.mark.parametrize("meta_url", ["sqlite"], indirect=True)
def test_biggest_plan_requests_are_bounded_and_leave_the_api_responsive(
    cluster: LocalCluster,
) -> None:
    api, token = cluster.api_url, cluster.admin_token
    file_id = commit_many_chunk_file(api, token)
    repeated = json.dumps({"file_ids": [file_id] * protocol.MAX_BATCH_FILES}).encode()
    init_body = biggest_init_uploads()
    prober = Prober(api)
    with ThreadPoolExecutor(3) as pool:
        probing = pool.submit(prober.run)
        plans = pool.submit(
            post, f"{api}{protocol.DOWNLOAD_PLANS}", token, repeated, BIG_REQUEST_TIMEOUT
        )
        inits = pool.submit(
            post, f"{api}{protocol.INIT_UPLOADS}", token, init_body, BIG_REQUEST_TIMEOUT
        )
        try:
            plans_status, plans_raw = plans.result()
            inits_status, inits_raw = inits.result()
        finally:
            prober.stop.set()
        probing.result()  # re-raises a /healthz that missed its deadline
    print(f"worst /healthz latency {prober.worst:.3f} s over {prober.count} probes")
    assert prober.worst < HEALTHZ_DEADLINE
    assert prober.count > 1
    assert plans_status == 200, plans_raw[:300]
    answer: list[dict[str, Any]] = json.loads(plans_raw)["plans"]
    assert len(answer) == protocol.MAX_BATCH_FILES
    assert len(answer[0]["chunks"]) == CHUNKS
    assert sum(len(p.get("chunks", ())) for p in answer) <= CHUNKS
    assert all(p["error"]["code"] == "payload_too_large" for p in answer[1:])
    assert inits_status == 201, inits_raw[:300]
    uploads = json.loads(inits_raw)["uploads"]
    assert sum(len(u["upload"]) for u in uploads) == CHUNKS
