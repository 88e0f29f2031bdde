"""dfs-s3's ``/metrics`` scraped through a live gateway process after boto3 calls: the
bearer DFS_METRICS_TOKEN is required, request series are labelled by S3 action (not path),
and the counters for requests, bytes and refused signatures move."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from dfs import protocol
from dfs.localcluster import LocalCluster, wait_for
from tests.e2e.conftest import Gateway, s3_code, started_gateway
from tests.integration.test_ops import sample

METRICS_TOKEN = "dfs_metrics-token-for-the-s3-gateway-tests-0123"
REFRESH = 1.0


@pytest.fixture
def metered_gateway(
    sqlite_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Gateway]:
    """dfs-s3 with a DFS_METRICS_TOKEN beside a cluster on SQLite, counting the uploads
    gauge every REFRESH seconds (15 by default: the gauge's test waited that out twice)."""
    monkeypatch.setenv("DFS_METRICS_TOKEN", METRICS_TOKEN)  # the gateway takes os.environ
    monkeypatch.setenv("DFS_S3_UPLOADS_REFRESH", str(REFRESH))
    with started_gateway(sqlite_cluster, "s3m") as gw:
        yield gw


def scrape(gw: Gateway, token: str | None = METRICS_TOKEN) -> tuple[int, str]:
    req = urllib.request.Request(f"{gw.url}{protocol.METRICS}")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:  # its socket closed, not left to the collector
            return exc.code, exc.read().decode()


def value(text: str, name: str, **labels: str) -> float:
    try:
        return sample(text, name, **labels)
    except KeyError:
        return 0.0


def test_metrics_need_the_token(metered_gateway: Gateway) -> None:
    status, body = scrape(metered_gateway, token="dfs_not-the-metrics-token-at-all-0000")
    assert status == 403
    assert "<Code>AccessDenied</Code>" in body
    status, body = scrape(metered_gateway, token=None)  # unsigned: bucket "metrics", refused
    assert status == 403
    assert "dfs_s3_requests_total" not in body
    status, body = scrape(metered_gateway)
    assert status == 200
    assert sample(body, "dfs_s3_requests_total", operation="Metrics", status="403") == 1
    # the unsigned one was an anonymous ListObjects of a bucket named "metrics"
    assert sample(body, "dfs_s3_requests_total", operation="ListObjects", status="403") == 1
    assert sample(body, "dfs_s3_auth_failures_total", reason="AccessDenied") == 1


def test_counters_move_with_boto3_calls(metered_gateway: Gateway) -> None:
    _, before = scrape(metered_gateway)
    s3 = metered_gateway.client()
    s3.create_bucket(Bucket="metered")
    s3.put_object(Bucket="metered", Key="a/b.bin", Body=b"x" * 1000)
    assert s3.get_object(Bucket="metered", Key="a/b.bin")["Body"].read() == b"x" * 1000
    s3.list_objects_v2(Bucket="metered")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="metered", Key="missing")
    assert s3_code(exc) == ("NoSuchKey", 404)
    forged = metered_gateway.client(secret="wrong-secret-" + "x" * 27)
    with pytest.raises(ClientError) as exc:
        forged.list_buckets()
    assert s3_code(exc) == ("SignatureDoesNotMatch", 403)

    status, after = scrape(metered_gateway)
    assert status == 200

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("dfs_s3_requests_total", operation="CreateBucket", status="200") == 1
    assert moved("dfs_s3_requests_total", operation="PutObject", status="200") == 1
    assert moved("dfs_s3_requests_total", operation="GetObject", status="200") == 1
    assert moved("dfs_s3_requests_total", operation="GetObject", status="404") == 1
    assert moved("dfs_s3_requests_total", operation="ListObjectsV2", status="200") == 1
    assert moved("dfs_s3_requests_total", operation="ListBuckets", status="403") == 1
    assert moved("dfs_s3_auth_failures_total", reason="SignatureDoesNotMatch") == 1
    assert moved("dfs_s3_request_bytes_total", operation="PutObject") >= 1000
    assert moved("dfs_s3_response_bytes_total", operation="GetObject") >= 1000
    assert moved("dfs_s3_request_duration_seconds_count", operation="PutObject") == 1
    # the scrape itself is being answered while the gauge is read
    assert value(after, "dfs_s3_requests_in_flight") == 1
    assert "a/b.bin" not in after  # no paths in labels
    assert "metered" not in after


def test_multipart_uploads_in_progress_gauge(metered_gateway: Gateway) -> None:
    """The gauge follows the uploads in the metadata store (counted at a scrape, at most
    every DFS_S3_UPLOADS_REFRESH seconds: the test waits for the new count with a deadline)."""
    _, first = scrape(metered_gateway)  # a new gateway counts at its first scrape
    base = value(first, "dfs_s3_multipart_uploads")
    s3 = metered_gateway.client()
    s3.create_bucket(Bucket="counted")
    ids = [s3.create_multipart_upload(Bucket="counted", Key=f"k{i}")["UploadId"] for i in range(3)]

    def wait_for_count(want: float) -> None:
        def counted() -> bool:
            return value(scrape(metered_gateway)[1], "dfs_s3_multipart_uploads") == want

        wait_for(counted, 30.0, f"dfs_s3_multipart_uploads = {want}", REFRESH / 4)

    wait_for_count(base + 3)
    s3.abort_multipart_upload(Bucket="counted", Key="k0", UploadId=ids[0])
    wait_for_count(base + 2)
    for i, uid in enumerate(ids[1:], start=1):
        s3.abort_multipart_upload(Bucket="counted", Key=f"k{i}", UploadId=uid)
