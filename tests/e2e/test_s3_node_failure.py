"""Writes through the API go on while a node is dead or hung (``dfs.api.chunk_writes``).

The gateway (and ``POST /upload``) writes chunks itself. A node killed or stopped stays
"live" to the API until its heartbeat expires; the clusters here keep it live for the whole
test (a long heartbeat timeout), the worst case: every chunk placed on it must be placed
again on the other nodes, or the PUT fails. The clients make one attempt each (no SDK
retries), so a PUT succeeds only if the gateway got every chunk stored on its own.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator

import pytest

from dfs.localcluster import LocalCluster
from tests.e2e.conftest import Gateway, started_gateway

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("meta_url", ["sqlite"], indirect=True),
    # REPLICATION_TIMEOUT 3 s: a node's forward to a hung replica gives up after 3 s (its 502
    # names the replica), and the gateway's own deadline for a hung primary is 13 s
    pytest.mark.cluster(
        nodes=4,
        heartbeat_timeout=600.0,
        nodes_via_api=True,
        env={"REPLICATION_TIMEOUT": "3"},
    ),
]

MIB = 1 << 20
OBJECTS = 4
SIZE = 6 * MIB  # ~6 chunks of the default profile each: ~24 placements, half on any one node


@pytest.fixture
def gw(cluster: LocalCluster) -> Iterator[Gateway]:
    with started_gateway(cluster, "nodefail") as g:
        yield g


def put_and_read_back(gw: Gateway, bucket: str) -> None:
    s3 = gw.client(retries={"max_attempts": 1}, read_timeout=90)
    s3.create_bucket(Bucket=bucket)
    want = {}
    for i in range(OBJECTS):
        body = os.urandom(SIZE)
        s3.put_object(Bucket=bucket, Key=f"o{i}", Body=body)
        want[f"o{i}"] = hashlib.sha256(body).hexdigest()
    for key, digest in want.items():
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(got).hexdigest() == digest, key


def test_s3_puts_succeed_with_a_node_killed(cluster: LocalCluster, gw: Gateway) -> None:
    cluster.node(2).kill()
    put_and_read_back(gw, "killed")


def test_s3_puts_succeed_with_a_node_hung(cluster: LocalCluster, gw: Gateway) -> None:
    node = cluster.node(3)
    node.signal(signal.SIGSTOP)
    try:
        put_and_read_back(gw, "hung")
    finally:
        node.signal(signal.SIGCONT)


def test_too_few_nodes_left_is_a_503(cluster: LocalCluster, gw: Gateway) -> None:
    """Three of four nodes dead while still registered live: no placement of two copies
    can succeed; the client gets a retryable 503, not a 500."""
    s3 = gw.client(retries={"max_attempts": 1})
    s3.create_bucket(Bucket="few")
    for i in (1, 2, 3):
        cluster.node(i).kill()
    with pytest.raises(s3.exceptions.ClientError) as err:
        s3.put_object(Bucket="few", Key="k", Body=os.urandom(2 * MIB))
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert err.value.response["Error"]["Code"] == "ServiceUnavailable"


def test_a_put_of_bytes_held_on_a_dead_node_succeeds_when_retried(
    cluster: LocalCluster, gw: Gateway
) -> None:
    """Bytes the tenant stores already are not sent again when their copies are on live
    nodes; a node killed still counts as live, so its copies are counted, and the commit's
    has-chunks round, which it does not answer, finds them short (503). The retry must not
    count them again: the node that did not answer is blamed, and the chunks are sent."""
    body = os.urandom(16 * MIB)  # ~16 chunks: each node holds copies of some
    s3 = gw.client(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=90)
    s3.create_bucket(Bucket="again")
    s3.put_object(Bucket="again", Key="first", Body=body)
    cluster.node(4).kill()
    s3.put_object(Bucket="again", Key="second", Body=body)  # one retry at most
    got = s3.get_object(Bucket="again", Key="second")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_complete_succeeds_after_a_node_holding_parts_died(
    cluster: LocalCluster, gw: Gateway
) -> None:
    """Parts were acknowledged durable; a node holding copies of their chunks dies before
    Complete. Complete has no bytes to send again: it copies each chunk short of copies
    from its remaining copy to another node (``dfs.api.draining_copies``) and commits, on
    its first attempt, rather than refusing until repair restores the copies."""
    s3 = gw.client(retries={"max_attempts": 1}, read_timeout=90)
    s3.create_bucket(Bucket="parts")
    uid = s3.create_multipart_upload(Bucket="parts", Key="k")["UploadId"]
    parts, bodies = [], []
    for n in (1, 2, 3):
        body = os.urandom(5 * MIB)  # ~15 chunks in all: each node holds copies of some
        etag = s3.upload_part(Bucket="parts", Key="k", UploadId=uid, PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": etag["ETag"]})
        bodies.append(body)
    cluster.node(1).kill()
    s3.complete_multipart_upload(
        Bucket="parts", Key="k", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    got = s3.get_object(Bucket="parts", Key="k")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(b"".join(bodies)).digest()
