"""dfs.durability_policy: the repair and GC rules the API and the simulator share, checked on
the service's own records (NodeRecord, ChunkState) so the rules stay those of the service."""

from __future__ import annotations

from dfs import durability_policy as policy
from dfs import placement
from dfs.meta.base import ChunkState, NodeRecord

NOW = 1000.0
GRACE = 60.0


def node(i: int, expires_at: float = NOW + 10, zone: str = "", used: int = 0) -> NodeRecord:
    return NodeRecord(f"n{i}", "127.0.0.1", 9000 + i, zone, 10**9, used, expires_at=expires_at)


def chunk(cid: str, nodes: set[str], refcount: int = 1, size: int = 100) -> ChunkState:
    return ChunkState(cid * 64 if len(cid) == 1 else cid, size, refcount, frozenset(nodes), 0.0)


def test_live_down_counting() -> None:
    nodes = [node(1), node(2, expires_at=NOW - 10), node(3, expires_at=NOW - 100), node(4, NOW)]
    assert policy.live_ids(nodes, NOW) == {"n1"}
    assert policy.down_ids(nodes, NOW) == {"n2", "n3", "n4"}
    # down less than the grace still counts; exactly at now is down but counting
    assert policy.counting_ids(nodes, NOW, GRACE) == {"n1", "n2", "n4"}
    assert policy.counting_ids(nodes, NOW, 0.0) == {"n1"}


def test_targeted_scope_and_settled() -> None:
    assert policy.returned_ids({"a", "b"}, {"b", "c"}) == {"b"}
    assert policy.targeted_nodes({"a", "b", "d"}, ["b"], {"c"}) == {"a", "c", "d"}
    assert policy.settled_ids(["a", "b", "c"], {"a"}, {"c"}) == {"b"}


def test_classify() -> None:
    live, counting = {"n1", "n2", "n3"}, {"n1", "n2", "n3", "n4"}
    assert (
        policy.classify(chunk("a", {"n1"}, refcount=0), live, counting, 2)
        is policy.Verdict.UNREFERENCED
    )
    assert (
        policy.classify(chunk("a", {"n4", "n5"}), live, counting, 2) is policy.Verdict.NO_LIVE_COPY
    )
    assert policy.classify(chunk("a", {"n1", "n5"}), live, counting, 2) is policy.Verdict.SHORT
    # a copy on a node down within the grace counts: not short
    assert policy.classify(chunk("a", {"n1", "n4"}), live, counting, 2) is policy.Verdict.OK
    assert (
        policy.classify(chunk("a", {"n1", "n2", "n3"}), live, counting, 2) is policy.Verdict.SURPLUS
    )
    # surplus counts live copies only
    assert policy.classify(chunk("a", {"n1", "n2", "n4"}), live, counting, 2) is policy.Verdict.OK


def test_needs_check() -> None:
    live, counting = {"n1"}, {"n1", "n2"}
    assert policy.needs_check(chunk("a", {"n3"}), live, counting, 1)  # no live copy
    assert policy.needs_check(chunk("a", {"n1"}), live, counting, 2)  # short
    assert not policy.needs_check(chunk("a", {"n1", "n2"}), live, counting, 2)
    assert not policy.needs_check(chunk("a", {"n3"}, refcount=0), live, counting, 2)


def test_repair_order_fewest_live_copies_first_then_id() -> None:
    live = {"n1", "n2", "n3"}
    cs = [
        chunk("c", {"n1", "n2"}),
        chunk("b", {"n1"}),
        chunk("a", {"n1", "n2"}),
        chunk("d", {"n9"}),
    ]
    order = [c.chunk_id[0] for c in policy.repair_order(cs, live)]
    assert order == ["d", "b", "a", "c"]
    assert policy.copies_needed(chunk("a", {"n1", "n9"}), {"n1"}, 3) == 2


def test_repair_targets_are_ranked_roomy_nodes_lacking_the_chunk() -> None:
    nodes = [node(i) for i in range(1, 7)] + [node(7, used=10**9 - 150)]
    c = chunk("e", {"n1", "n2"})
    targets = policy.repair_targets(c, nodes, min_free=100)
    ids = [n.node_id for n in targets]
    assert not {"n1", "n2", "n7"} & set(ids)  # n7: 150 free < 100 + 100
    cands = [placement.Candidate(n.node_id, n.zone, n.free_bytes) for n in nodes[2:6]]
    assert ids == [x.node_id for x in placement.rank(c.chunk_id, cands)]
    sources = policy.repair_sources(c, nodes)
    assert sorted(n.node_id for n in sources) == ["n1", "n2"]


def test_trim_victims_are_the_lowest_ranked_holders() -> None:
    holders = [node(i) for i in range(1, 5)]
    cid = "f" * 64
    ranked = policy.rank_nodes(cid, holders)
    assert policy.trim_victims(cid, holders, 2) == ranked[2:]
    assert policy.trim_victims(cid, holders[:2], 2) == []


def test_place_new_matches_placement_choose_over_roomy_nodes() -> None:
    nodes = [node(i, zone=f"z{i % 3}") for i in range(1, 10)] + [node(10, used=10**9)]
    chosen = policy.place_new("0" * 64, 100, nodes, 0, 3)
    assert len({n.zone for n in chosen}) == 3
    assert "n10" not in {n.node_id for n in chosen}
    cands = [placement.Candidate(n.node_id, n.zone, n.free_bytes) for n in nodes[:9]]
    assert [n.node_id for n in chosen] == [c.node_id for c in placement.choose("0" * 64, cands, 3)]


def test_repair_pause() -> None:
    assert policy.repair_pause(64, 2, 32.0) == 4.0
    assert policy.repair_pause(64, 0, 32.0) == 2.0  # a failed copy still waits one size


def test_gc_verdict() -> None:
    cid = "a" * 64
    assert policy.gc_verdict(1, 0.0, cid, NOW, GRACE, set()) is policy.GcVerdict.KEEP
    assert policy.gc_verdict(0, NOW - 10, cid, NOW, GRACE, set()) is policy.GcVerdict.KEEP
    assert policy.gc_verdict(0, NOW - GRACE, cid, NOW, GRACE, set()) is policy.GcVerdict.KEEP
    assert policy.gc_verdict(0, NOW - 61, cid, NOW, GRACE, {cid}) is policy.GcVerdict.PROTECTED
    assert policy.gc_verdict(0, NOW - 61, cid, NOW, GRACE, set()) is policy.GcVerdict.COLLECT


def test_spread_repair_targets_put_a_missing_zone_first() -> None:
    nodes = [node(i, zone=f"z{i % 3}") for i in range(1, 10)]
    c = chunk("a", {"n3"})  # n3 is in z0
    ranked = policy.repair_targets(c, nodes, 0)
    spread = policy.spread_repair_targets(c, nodes, 0, {"z0"})
    assert sorted(n.node_id for n in spread) == sorted(n.node_id for n in ranked)
    assert spread[0].zone != "z0"
    assert spread[0] == next(n for n in ranked if n.zone != "z0")


def test_spread_trim_keeps_distinct_zones() -> None:
    holders = [node(1, zone="a"), node(2, zone="a"), node(3, zone="b")]
    for cid in ("0" * 64, "1" * 64, "2" * 64, "3" * 64):
        victims = policy.spread_trim_victims(cid, holders, 2)
        kept = [h for h in holders if h not in victims]
        assert len(victims) == 1
        assert {h.zone for h in kept} == {"a", "b"}
