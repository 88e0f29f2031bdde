"""``Expect: 100-continue`` on the live servers (dfs-s3, dfs-api, dfs-node as processes):
the ``100`` invites a body only once the request is authenticated and its handler reads it
(``dfs.expect_continue``). A refused request gets its final answer at once, with
``Connection: close``, and the connection ends; its body is never asked for. Driven over raw
sockets, since a client library hides the interim answer; the signed request is signed by
botocore, as boto3 signs it."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dfs.localcluster import LocalCluster
from tests.e2e.conftest import Gateway, aws_cli, aws_env

DEADLINE = 10.0
BODY = b"expect-continue " * 4096  # 64 KiB


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), DEADLINE)
    sock.settimeout(DEADLINE)
    return sock


def send_head(sock: socket.socket, method: str, path: str, headers: dict[str, str]) -> None:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


class Answers:
    """The answers a server sends on one connection, read as they come (within DEADLINE)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _more(self) -> bytes:
        data = self.sock.recv(65536)
        self.buf += data
        return data

    def head(self) -> tuple[int, dict[str, str]]:
        """The next answer's status and headers (a ``100`` is an answer of its own)."""
        until = time.monotonic() + DEADLINE
        while b"\r\n\r\n" not in self.buf:
            assert time.monotonic() < until, "no complete answer head in time"
            assert self._more(), f"connection closed before an answer: {self.buf!r}"
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *fields = raw.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
        return int(status_line.split()[1]), headers

    def body(self, headers: dict[str, str]) -> bytes:
        size = int(headers.get("content-length", "0"))
        until = time.monotonic() + DEADLINE
        while len(self.buf) < size:
            assert time.monotonic() < until, "answer body not complete in time"
            assert self._more(), "connection closed inside an answer body"
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def closed(self) -> bool:
        """True once the server closed the connection (False if it sent more instead)."""
        try:
            return self._more() == b""
        except ConnectionResetError:
            return True


def refused_before_body(url: str, method: str, path: str, headers: dict[str, str]) -> int:
    """Send only the head of a request that declares a body and waits for ``100``; assert the
    server answers with a final status (no ``100``), says it closes, and closes. Returns the
    status."""
    with connect(url) as sock:
        host = urlsplit(url).netloc
        send_head(sock, method, path, {"Host": host, "Expect": "100-continue", **headers})
        answers = Answers(sock)
        status, got = answers.head()
        assert status != 100, "the body was invited before the request was authenticated"
        assert got.get("connection", "").lower() == "close"
        answers.body(got)
        assert answers.closed(), "the connection stayed open for a body never asked for"
        return status


def invited_then_answered(
    url: str, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    """Send the head, wait for ``100 Continue`` before sending a byte of ``body``, then send
    it; the final status and answer body."""
    with connect(url) as sock:
        host = urlsplit(url).netloc
        send_head(sock, method, path, {"Host": host, "Expect": "100-continue", **headers})
        answers = Answers(sock)
        status, _ = answers.head()
        assert status == 100, f"expected 100 Continue first, got {status}"
        sock.sendall(body)
        status, got = answers.head()
        return status, answers.body(got)


def signed_put(gw: Gateway, path: str, body: bytes) -> dict[str, str]:
    """The headers boto3 would sign a PutObject with (over http: the payload hash signed)."""
    request = AWSRequest(
        method="PUT",
        url=f"{gw.url}{path}",
        data=body,
        headers={"Expect": "100-continue", "Content-Length": str(len(body))},
    )
    S3SigV4Auth(Credentials(gw.key_id, gw.secret), "s3", "us-east-1").add_auth(request)
    headers = {k: str(v) for k, v in request.headers.items() if k.lower() != "expect"}
    assert headers["X-Amz-Content-SHA256"] == hashlib.sha256(body).hexdigest()
    return headers


def test_s3_invites_a_body_only_after_its_signature(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    s3 = gw.client()
    s3.create_bucket(Bucket="cont")
    forged = {
        "Content-Length": str(8 << 20),
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "x-amz-date": "20260101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIANOSUCHKEY0000000/20260101/"
        "us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
    }
    assert refused_before_body(gw.url, "PUT", "/cont/forged", forged) == 403

    status, answer = invited_then_answered(
        gw.url, "PUT", "/cont/signed", signed_put(gw, "/cont/signed", BODY), BODY
    )
    assert status == 200, answer
    assert s3.get_object(Bucket="cont", Key="signed")["Body"].read() == BODY
    # signed, but the bucket does not exist: invited (the signature checked out), then 404
    status, answer = invited_then_answered(
        gw.url, "PUT", "/nosuchbucket/k", signed_put(gw, "/nosuchbucket/k", BODY), BODY
    )
    assert status == 404, answer


def test_an_empty_signed_put_is_answered_after_a_100(sqlite_gateway: Gateway) -> None:
    """Every answer to an authenticated request with ``Expect`` follows a ``100``, an empty
    body's too: botocore keeps the status line of an answer that came instead of its
    ``100`` and reads the next answer on that connection with it."""
    gw = sqlite_gateway
    gw.client().create_bucket(Bucket="empty")
    status, answer = invited_then_answered(
        gw.url, "PUT", "/empty/nothing", signed_put(gw, "/empty/nothing", b""), b""
    )
    assert status == 200, answer


def test_the_aws_cli_syncs_an_empty_file_among_others_on_one_connection(
    sqlite_gateway: Gateway, tmp_path: Path
) -> None:
    """The AWS CLI (botocore) one request at a time: an empty file, then others, on one
    connection. Answered without a ``100``, the empty file's answer left botocore reading
    the next answer's headers as garbage (``Failed to parse headers``) and waiting for the
    connection to close."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a-empty").write_bytes(b"")
    for name in ("b", "c"):
        (tree / name).write_bytes(BODY)
    env = aws_env(sqlite_gateway, tmp_path)
    (tmp_path / "no-aws-config").write_text("[default]\ns3 =\n  max_concurrent_requests = 1\n")
    aws = [aws_cli(), "--endpoint-url", sqlite_gateway.url, "s3"]
    subprocess.run([*aws, "mb", "s3://one-conn"], env=env, check=True, capture_output=True)
    synced = subprocess.run(
        [*aws, "sync", str(tree), "s3://one-conn/", "--debug"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert synced.returncode == 0, synced.stderr[-3000:]
    assert "Failed to parse headers" not in synced.stderr
    assert synced.stderr.count("100 Continue response seen") == 3


def test_api_invites_a_body_only_for_a_known_token(sqlite_gateway: Gateway) -> None:
    api = sqlite_gateway.api_url
    body = json.dumps({"label": "expect-continue"}).encode()
    unknown = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Authorization": "Bearer nope",
    }
    assert refused_before_body(api, "POST", "/access-keys", unknown) == 401

    known = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Authorization": f"Bearer {sqlite_gateway.token}",
    }
    status, answer = invited_then_answered(api, "POST", "/access-keys", known, body)
    assert status in (200, 201), answer
    assert json.loads(answer)["access_key_id"]


def test_node_invites_a_chunk_only_with_a_capability(sqlite_cluster: LocalCluster) -> None:
    url = sqlite_cluster.node(1).wait_listening(DEADLINE)
    chunk_id = hashlib.sha256(BODY).hexdigest()
    headers = {
        "Content-Length": str(len(BODY)),
        "X-Dfs-Capability": "not-a-capability",
    }
    status = refused_before_body(url, "PUT", f"/store-chunk?chunk_id={chunk_id}", headers)
    assert 400 <= status < 500


@pytest.mark.parametrize("expect", ["something-else", "100-continue, x"])
def test_an_unknown_expectation_is_refused(sqlite_gateway: Gateway, expect: str) -> None:
    with connect(sqlite_gateway.api_url) as sock:
        host = urlsplit(sqlite_gateway.api_url).netloc
        send_head(sock, "POST", "/access-keys", {"Host": host, "Expect": expect})
        status, _ = Answers(sock).head()
    assert status == 417


def test_a_request_without_a_body_keeps_its_connection(sqlite_gateway: Gateway) -> None:
    """``Expect`` on an authenticated request with no body: a ``100`` (see above), the
    answer, and the connection stays open for the next request."""
    api = sqlite_gateway.api_url
    head = {
        "Host": urlsplit(api).netloc,
        "Expect": "100-continue",
        "Authorization": f"Bearer {sqlite_gateway.token}",
    }
    with connect(api) as sock:
        answers = Answers(sock)
        for _ in range(2):  # the second on the same connection
            send_head(sock, "GET", "/whoami", head)
            assert answers.head()[0] == 100
            status, got = answers.head()
            assert status == 200
            assert got.get("connection", "").lower() != "close"
            assert json.loads(answers.body(got))["tenant"]
