"""``durability_policy.shared_disks``: two live node ids announcing one disk identity (one
data directory served twice) are one copy, so one id stands for the disk."""

from __future__ import annotations

from dfs import durability_policy as policy


def test_ids_sharing_a_disk_name_the_smallest_as_the_one_that_counts() -> None:
    disks = {"node2": "d-1", "node1": "d-1", "node3": "d-2", "node4": "d-1"}
    assert policy.shared_disks(disks) == {"node2": "node1", "node4": "node1"}


def test_own_disks_and_nodes_without_an_identity_share_nothing() -> None:
    assert policy.shared_disks({"a": "d-1", "b": "d-2"}) == {}
    assert policy.shared_disks({"a": "", "b": "", "c": "d-1"}) == {}


def test_a_node_restarted_under_a_new_id_once_its_old_entry_expired_is_alone() -> None:
    # repair passes only live nodes: the expired entry of the old id is not among them
    nodes = {"old": ("d-1", 100.0), "new": ("d-1", 200.0)}
    now = 150.0
    live = {n: d for n, (d, expires_at) in nodes.items() if expires_at > now}
    assert policy.shared_disks(live) == {}
