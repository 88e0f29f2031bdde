"""Which nodes a failed write of the API blames (``dfs.api.chunk_writes``), and how long the
process remembers them (``dfs.api.write_failures``). The writes themselves, against real
nodes killed and stopped, are tests/e2e/test_s3_node_failure.py's."""

from __future__ import annotations

from dfs import protocol
from dfs.api.chunk_writes import blamed_by, forwarded_write_timeout
from dfs.api.write_failures import RecentFailures
from dfs.errors import InsufficientStorage, ReplicationError, Unavailable
from dfs.meta.base import NodeRecord
from tests.manual_clock import Clock

A = NodeRecord(node_id="a", host="127.0.0.1", port=1)


def test_an_unreachable_or_full_primary_is_blamed_alone() -> None:
    assert blamed_by(Unavailable("refused"), A, ["b", "c"], set()) == {"a"}
    assert blamed_by(InsufficientStorage("full"), A, ["b"], set()) == {"a"}


def test_a_502_blames_the_replicas_it_names() -> None:
    exc = ReplicationError("1 of 2 replicas failed", failed_nodes=["c"])
    assert blamed_by(exc, A, ["b", "c"], set()) == {"c"}


def test_a_502_naming_nothing_known_blames_the_known_failures_else_every_replica() -> None:
    old_node = ReplicationError("1 of 2 replicas failed")  # a node before failed_nodes
    assert blamed_by(old_node, A, ["b", "c"], {"c", "z"}) == {"c"}
    assert blamed_by(old_node, A, ["b", "c"], set()) == {"b", "c"}
    stranger = ReplicationError("x", failed_nodes=["not-a-target"])
    assert blamed_by(stranger, A, ["b"], set()) == {"b"}


def test_failures_are_remembered_until_the_ttl_or_an_answer() -> None:
    clock = Clock()
    failures = RecentFailures(15.0, clock=clock)
    failures.blame(["a", "b"])
    assert failures.blamed() == {"a", "b"}
    failures.answered(["a"])
    assert failures.blamed() == {"b"}
    clock.now += 15.0
    assert failures.blamed() == set()


def test_the_apis_deadline_outlasts_the_nodes_forward() -> None:
    # a node gives up a forward after REPLICATION_TIMEOUT at most; the API waits longer, so
    # a hung replica is reported by its primary's 502 rather than taken for a hung primary
    assert forwarded_write_timeout(30.0) >= 30.0 + protocol.CHUNK_DEADLINE_FLOOR
