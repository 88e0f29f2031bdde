"""scripts/roll_nodes.sh against stand-ins: a recording `terraform` on PATH (its outputs, and
`apply -replace` of one node) and a fake API on loopback (/nodes, /admin/repair, /readyz).
The nodes are replaced one at a time, each only once the cluster is healthy and the previous
one is back; a node that does not come back within the repair grace stops the roll."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import SCRIPTS

pytestmark = pytest.mark.deploy

IPS = ["10.40.100.11", "10.40.101.12", "10.40.102.13"]
GRACE = 4
TERRAFORM = r"""#!{python}
import json, re, sys, time
from pathlib import Path
state = Path({state!r})
args = sys.argv[2:]  # after -chdir=DIR
with (state / "terraform.log").open("a") as f:
    f.write(" ".join(args) + "\n")
if args[:2] == ["output", "-raw"]:
    print({{"api_url": {api!r}, "repair_grace_seconds": "{grace}"}}[args[2]], end="")
elif args[:2] == ["output", "-json"]:
    print(json.dumps({ips!r}))
elif args[0] == "apply":
    [i] = re.findall(r"-replace=aws_instance\.node\[(\d+)\]", " ".join(args))
    (state / f"replaced-{{i}}").write_text(str(time.time()))
"""


class FakeApi:
    """/nodes: node i is live with an old heartbeat until terraform replaced it; then it
    heartbeats now (unless it is in ``never_back``). /admin/repair: a fresh, clean pass."""

    def __init__(self, state: Path, never_back: set[int]) -> None:
        self.state = state
        self.never_back = never_back
        self.started = time.time() - 100

    def nodes(self) -> dict[str, Any]:
        out = []
        for i, ip in enumerate(IPS):
            replaced = (self.state / f"replaced-{i}").exists()
            gone = replaced and i in self.never_back
            beat = time.time() if replaced and not gone else self.started
            out.append(
                {
                    "node_id": f"n{i}",
                    "url": f"http://{ip}:9000",
                    "live": not gone,
                    "last_heartbeat": beat,
                }
            )
        return {"nodes": out}

    def answer(self, path: str) -> dict[str, Any]:
        if path == "/nodes":
            return self.nodes()
        if path == "/admin/repair":
            now = time.time()
            report = {"started_at": now, "running": False, "under_replicated": 0}
            return {"repair": {**report, "no_live_copy": 0}}
        return {"status": "ready"}


@pytest.fixture
def fake_api(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeApi]]:
    api = FakeApi(tmp_path, set(getattr(request, "param", ())))

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != "/readyz" and self.headers.get("Authorization") != "Bearer tok":
                self.send_response(401)
                self.end_headers()
                return
            data = json.dumps(api.answer(self.path)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", api
    finally:
        server.shutdown()
        server.server_close()


def roll(tmp_path: Path, url: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tf = bin_dir / "terraform"
    tf.write_text(
        TERRAFORM.replace("{python}", sys.executable).format(
            state=str(tmp_path), api=url, grace=GRACE, ips=IPS
        )
    )
    tf.chmod(0o755)
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "roll_nodes.sh"), "-var-file=prod.tfvars"],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "DFS_TOKEN": "tok",
            "DFS_ROLL_POLL": "0.2",
            "TERRAFORM_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    log = (tmp_path / "terraform.log").read_text().splitlines()
    return proc, [line for line in log if line.startswith("apply")]


def test_nodes_are_replaced_one_at_a_time(tmp_path: Path, fake_api: tuple[str, FakeApi]) -> None:
    url, _ = fake_api
    proc, applies = roll(tmp_path, url)
    assert proc.returncode == 0, proc.stderr
    assert applies == [
        f"apply -auto-approve -input=false -replace=aws_instance.node[{i}] "
        f"-target=aws_volume_attachment.data[{i}] -var-file=prod.tfvars"
        for i in range(len(IPS))
    ]
    assert "every node rolled" in proc.stderr


@pytest.mark.parametrize("fake_api", [{1}], indirect=True)
def test_a_node_not_back_within_the_grace_stops_the_roll(
    tmp_path: Path, fake_api: tuple[str, FakeApi]
) -> None:
    url, _ = fake_api
    proc, applies = roll(tmp_path, url)
    assert proc.returncode == 1
    assert len(applies) == 2  # node 0, then node 1, which never returns: not node 2
    assert "n1 not back within the repair grace" in proc.stderr
