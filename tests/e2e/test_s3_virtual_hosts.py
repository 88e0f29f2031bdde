"""Virtual-host-style addressing (``DFS_S3_DOMAIN``) never acts on another bucket or key than
the request's Host and path name together: a Host that aiohttp's ``*.DOMAIN`` routing and
``dfs.s3.addressing.bucket_of_host`` read differently answers 400 ``InvalidRequest``.

Signed raw HTTP to a real gateway (the Host header is set by hand: nothing resolves the
names), as a virtual-host client sends it.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Iterator

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dfs.localcluster import LocalCluster
from dfs.s3.sigv4 import EMPTY_SHA256
from tests.e2e.conftest import Gateway, started_gateway

pytestmark = pytest.mark.e2e

DOMAIN = "s3.localhost"


@pytest.fixture
def gateway(sqlite_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    monkeypatch.setenv("DFS_S3_DOMAIN", DOMAIN)
    with started_gateway(sqlite_cluster, "vhosts") as gw:
        yield gw


def send(
    gw: Gateway, method: str, host: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One request with this Host and path to the gateway; (status, body)."""
    where = urllib.parse.urlsplit(gw.url)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def signed_to(gw: Gateway, method: str, host: str, path: str) -> tuple[int, bytes]:
    """``send``, SigV4-signed (the Host and path as sent) with the gateway's key."""
    headers = {"x-amz-content-sha256": EMPTY_SHA256}
    req = AWSRequest(method=method, url=f"http://{host}{path}", headers=headers)
    S3SigV4Auth(Credentials(gw.key_id, gw.secret), "s3", "us-east-1").add_auth(req)
    return send(gw, method, host, path, dict(req.headers.items()))


def test_a_host_routing_and_the_bucket_disagree_on_is_refused(gateway: Gateway) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="vhb")
    s3.put_object(Bucket="vhb", Key="dir/k", Body=b"deep")
    s3.put_object(Bucket="vhb", Key="k", Body=b"shallow")
    port = urllib.parse.urlsplit(gateway.url).port

    def keys() -> list[str]:
        return sorted(o["Key"] for o in s3.list_objects_v2(Bucket="vhb")["Contents"])

    # a fully qualified Host (trailing dot): the path was routed path style (bucket "dir",
    # key "k") and the bucket then replaced by the Host's, so this deleted vhb/k; a path
    # of one segment was a bucket call (DeleteBucket of vhb)
    for path in ("/dir/k", "/k"):
        status, body = signed_to(gateway, "DELETE", f"vhb.{DOMAIN}.:{port}", path)
        assert (status, b"<Code>InvalidRequest</Code>" in body) == (400, True), body
    assert keys() == ["dir/k", "k"]
    # routed to the buckets' sub-application but naming no bucket: was a 500
    status, body = send(gateway, "GET", f"vhb.{DOMAIN}:1:{port}", "/k")
    assert (status, b"<Code>InvalidRequest</Code>" in body) == (400, True), body
    # the same call with the usual Host deletes what it names
    status, _ = signed_to(gateway, "DELETE", f"vhb.{DOMAIN}:{port}", "/dir/k")
    assert status == 204
    assert keys() == ["k"]


def test_a_key_with_a_line_break_virtual_host_style(gateway: Gateway) -> None:
    """A key holding a line break is reached in this style too (the mirrored key route)."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="vhn")
    s3.put_object(Bucket="vhn", Key="a\nb", Body=b"broken line")
    port = urllib.parse.urlsplit(gateway.url).port
    status, body = signed_to(gateway, "GET", f"vhn.{DOMAIN}:{port}", "/a%0Ab")
    assert (status, body) == (200, b"broken line")
    status, _ = signed_to(gateway, "DELETE", f"vhn.{DOMAIN}:{port}", "/a%0Ab")
    assert status == 204
    assert "Contents" not in s3.list_objects_v2(Bucket="vhn")
