"""Probability of losing any chunk per year, from a birth-death Markov model of concurrent
permanent failures, fed with the failure and repair rates the simulation measured.

Losses under RF 3 and erasure coding are far too rare to observe in a simulated year, so
they are computed, not counted. Erasure coding has no code in dfs: it is modelled only.

The chain's state ``i`` is how many fragments (copies) the most damaged stripes have lost.
A layout stores each stripe as ``n`` fragments of which any ``k`` rebuild it (RF r: n=r,
k=1; Reed-Solomon k+m: n=k+m); data is lost at ``n-k+1`` concurrent losses.
- up: ``(N-i) * lam`` (another node loses its disk);
- down: ``1 / T_i``, the time to rebuild the most damaged stripes. ``T_1`` rebuilds a whole
  node's fragments (``k`` fragment-bytes read per byte rebuilt); at ``i >= 2`` only the
  stripes shared with the other failed nodes, a ``(n-j)/(N-j)`` share per extra failure,
  which repair does first (the policy's fewest-copies-first order) - but in dfs a pass runs
  to its end before it re-sorts, so as shipped they also wait half a pass (``preemptive``
  False);
- the last step loses data only if some stripe has fragments on all the failed nodes and is
  still unrepaired (half of them on average): ``1 - exp(-E/2)``, E the expected number of
  such stripes.
Correlated permanent failures (a rack's disks at once) start the chain in state 1 with a
rack's worth of data to rebuild; zone-aware placement keeps a rack's loss to one fragment
per stripe for replication (a rack sits in one zone). Assumes independent node failures
otherwise, a fixed detection delay, and one repair stream at ``rate`` bytes/s cluster-wide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dfs.sim.config import YEAR


@dataclass(frozen=True)
class Layout:
    name: str
    n: int
    k: int

    @property
    def overhead(self) -> float:
        return self.n / self.k

    @property
    def fatal(self) -> int:
        return self.n - self.k + 1


LAYOUTS = (
    Layout("RF 2", 2, 1),
    Layout("RF 3", 3, 1),
    Layout("RS 6+3", 9, 6),
    Layout("RS 10+4", 14, 10),
)


@dataclass(frozen=True)
class Inputs:
    nodes: int
    lam: float
    """Permanent node (disk) losses per node-second (measured)."""
    delay: float
    """Seconds from a loss to its first repair (detection + grace + pass interval; measured)."""
    rate: float
    """Repair bandwidth, bytes/s copied or read for rebuilds, cluster-wide."""
    data_bytes: float
    """Unique user bytes stored."""
    chunk_bytes: float
    rack_nodes: int = 20
    rack_perm_per_s: float = 0.0
    """Correlated permanent losses of a whole rack per second (measured)."""
    preemptive: bool = False


def _expected_shared(layout: Layout, inp: Inputs) -> float:
    stripes = inp.data_bytes / (layout.k * inp.chunk_bytes)
    f = layout.fatal
    ratio = 1.0
    for j in range(f):
        ratio *= (layout.n - j) / (inp.nodes - j)
    return stripes * ratio


def _rates(
    layout: Layout, inp: Inputs, first_bytes: float | None = None
) -> tuple[list[float], list[float]]:
    """Up and down rates of states 0..fatal-1 (down[0] unused)."""
    node_bytes = inp.data_bytes * layout.overhead / inp.nodes
    ups: list[float] = []
    downs: list[float] = [0.0]
    share = 1.0
    for i in range(layout.fatal):
        ups.append((inp.nodes - i) * inp.lam)
        if i == 0:
            continue
        if i >= 2:
            share *= (layout.n - i + 1) / (inp.nodes - i + 1)
        crit = (first_bytes if first_bytes is not None and i == 1 else node_bytes) * share
        wait = 0.0 if (inp.preemptive or i == 1) else node_bytes * layout.k / (2 * inp.rate)
        downs.append(1.0 / (inp.delay + wait + crit * layout.k / inp.rate))
    ups[-1] *= 1.0 - math.exp(-_expected_shared(layout, inp) / 2)
    return ups, downs


def mttdl(layout: Layout, inp: Inputs) -> float:
    """Mean seconds until some chunk is lost, from all-healthy: the sum of the expected
    times to step from i to i+1, tau_i = 1/a_i + (b_i/a_i) tau_{i-1} (all terms positive,
    so no cancellation at extreme rates)."""
    ups, downs = _rates(layout, inp)
    if ups[-1] <= 0:
        return math.inf
    tau = 0.0
    total = 0.0
    for a, b in zip(ups, downs, strict=True):
        tau = (1.0 + b * tau) / a
        total += tau
    return total


def hit_probability(layout: Layout, inp: Inputs, first_bytes: float) -> float:
    """From one fragment lost on ``first_bytes`` of data, the chance of reaching data loss
    before the damage is repaired (gambler's ruin on the same chain)."""
    ups, downs = _rates(layout, inp, first_bytes)
    total, prod = 1.0, 1.0
    for j in range(1, layout.fatal):
        if ups[j] <= 0:
            return 0.0
        prod *= downs[j] / ups[j]
        total += prod
    return 1.0 / total


def annual_loss(layout: Layout, inp: Inputs) -> float:
    """Probability of losing at least one chunk in a year (independent and rack failures)."""
    independent = YEAR / mttdl(layout, inp)
    rack_bytes = inp.data_bytes * layout.overhead / inp.nodes * inp.rack_nodes
    correlated = inp.rack_perm_per_s * YEAR * hit_probability(layout, inp, rack_bytes)
    return -math.expm1(-(independent + correlated))
