"""Placement: deterministic, distinct, zone-spread, weighted, and minimal movement on change."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from dfs.placement import Candidate, choose, rank, rotation, score


def cid(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def nodes(k: int, zones: int = 1) -> list[Candidate]:
    return [Candidate(f"n{i}", zone=f"z{i % zones}" if zones > 1 else "") for i in range(k)]


def ids(chosen: list[Candidate]) -> list[str]:
    return [c.node_id for c in chosen]


def test_deterministic_and_independent_of_candidate_order() -> None:
    cands = nodes(7, zones=3)
    shuffled = cands[:]
    random.Random(0).shuffle(shuffled)
    for i in range(200):
        first = ids(choose(cid(i), cands, 3))
        assert ids(choose(cid(i), cands, 3)) == first
        assert ids(choose(cid(i), shuffled, 3)) == first
        assert ids(rank(cid(i), shuffled)) == ids(rank(cid(i), cands))


def test_score_is_a_pure_function() -> None:
    cand = Candidate("n1", free_bytes=10)
    assert score(cid(1), cand) == score(cid(1), Candidate("n1", free_bytes=10))
    assert score(cid(1), cand) > 0


@pytest.mark.parametrize(("k", "n"), [(1, 1), (3, 2), (5, 3), (5, 5), (2, 3), (0, 2)])
def test_choose_returns_min_n_k_distinct_nodes(k: int, n: int) -> None:
    cands = nodes(k)
    for i in range(100):
        chosen = ids(choose(cid(i), cands, n))
        assert len(chosen) == min(n, k)
        assert len(set(chosen)) == len(chosen)
        assert set(chosen) <= {c.node_id for c in cands}


def test_choose_zero_replicas() -> None:
    assert choose(cid(1), nodes(3), 0) == []


def test_zone_spread() -> None:
    cands = nodes(6, zones=3)  # 3 zones x 2 nodes
    primaries = Counter()
    for i in range(1000):
        chosen = choose(cid(i), cands, 3)
        assert len({c.zone for c in chosen}) == 3
        primaries[chosen[0].node_id] += 1
    assert set(primaries) == {c.node_id for c in cands}  # every node gets work


def test_more_replicas_than_zones_still_uses_every_zone_then_fills() -> None:
    cands = nodes(6, zones=2)
    for i in range(500):
        chosen = choose(cid(i), cands, 4)
        assert len(set(ids(chosen))) == 4
        assert {c.zone for c in chosen[:2]} == {"z0", "z1"}


def test_weights_bias_primaries_towards_free_space() -> None:
    cands = [Candidate("big", free_bytes=10 * 2**30)] + [
        Candidate(f"small{i}", free_bytes=2**30) for i in range(4)
    ]
    primaries = Counter(choose(cid(i), cands, 1)[0].node_id for i in range(20_000))
    # expected share of "big" is 10/14 (~14,286 of 20,000); each small node ~1/14 (~1,429)
    ratio = primaries["big"] / (sum(primaries[f"small{i}"] for i in range(4)) / 4)
    assert 8 < ratio < 12.5, primaries
    assert all(primaries[f"small{i}"] > 0 for i in range(4))


def test_zero_free_bytes_is_still_a_candidate() -> None:
    cands = [Candidate("full", free_bytes=0), Candidate("other", free_bytes=0)]
    assert len(choose(cid(1), cands, 2)) == 2


def test_equal_weights_spread_evenly() -> None:
    cands = nodes(4)
    primaries = Counter(choose(cid(i), cands, 1)[0].node_id for i in range(8000))
    assert all(1600 < v < 2400 for v in primaries.values()), primaries


def test_removing_a_node_moves_only_its_chunks() -> None:
    cands = nodes(5)
    removed = "n2"
    remaining = [c for c in cands if c.node_id != removed]
    moved = 0
    for i in range(2000):
        before = ids(choose(cid(i), cands, 2))
        after = ids(choose(cid(i), remaining, 2))
        if removed in before:
            moved += 1
            survivor = [n for n in before if n != removed]
            assert after[: len(survivor)] == survivor  # the surviving copy stays first
        else:
            assert after == before
    assert 0.3 * 2000 < moved < 0.5 * 2000  # about 2/5 of the chunks held a copy on n2


def test_adding_a_node_moves_chunks_only_onto_it() -> None:
    cands = nodes(4)
    grown = [*cands, Candidate("new")]
    for i in range(2000):
        before = ids(choose(cid(i), cands, 2))
        after = ids(choose(cid(i), grown, 2))
        if "new" not in after:
            assert after == before
        else:
            assert set(after) - {"new"} <= set(before)


def test_removing_a_node_with_zones_keeps_unaffected_sets() -> None:
    cands = nodes(6, zones=3)
    remaining = [c for c in cands if c.node_id != "n4"]
    for i in range(1000):
        before = ids(choose(cid(i), cands, 2))
        if "n4" not in before:
            assert ids(choose(cid(i), remaining, 2)) == before


def test_rotation_puts_each_target_first_once_and_keeps_the_cycle() -> None:
    targets = ["a", "b", "c"]
    assert [rotation(targets, i) for i in range(3)] == [
        ("a", ["b", "c"]),
        ("b", ["c", "a"]),
        ("c", ["a", "b"]),
    ]
    assert rotation(targets, 4) == ("b", ["c", "a"])  # wraps around
    assert rotation(["only"], 7) == ("only", [])
