"""``python -m dfs.sim``: run the scale model and write its report and plots."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from dfs.sim import plots, report
from dfs.sim.config import MIB, PB, TB, Durability, SimConfig, Workload
from dfs.sim.run import simulate


def parse(argv: list[str] | None) -> tuple[SimConfig, Path, bool]:
    p = argparse.ArgumentParser(prog="python -m dfs.sim", description=__doc__)
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--zones", type=int, default=3)
    p.add_argument("--capacity-tb", type=float, default=16.0, help="disk per node, TB")
    p.add_argument("--days", type=float, default=365.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("sim-report"))
    p.add_argument("--data-pb", type=float, default=1.0, help="unique data at the end, PB")
    p.add_argument("--groups", type=int, default=100_000, help="placement groups (<= ~1e5)")
    p.add_argument("--rf", type=int, default=Durability.rf)
    p.add_argument("--repair-mib", type=float, default=Durability.repair_rate / MIB)
    p.add_argument("--grace", type=float, default=Durability.repair_grace, help="seconds")
    p.add_argument(
        "--zone-aware", action="store_true", help="proposed zone-aware repair and trimming"
    )
    p.add_argument(
        "--recheck", action="store_true", help="proposed: re-check a chunk before copying it"
    )
    p.add_argument("--no-scenarios", action="store_true", help="skip node/zone loss runs")
    a = p.parse_args(argv)
    cfg = SimConfig(
        nodes=a.nodes,
        zones=a.zones,
        capacity_bytes=int(a.capacity_tb * TB),
        days=a.days,
        seed=a.seed,
        groups=a.groups,
        workload=Workload(data_bytes=int(a.data_pb * PB)),
        durability=dataclasses.replace(
            Durability(),
            rf=a.rf,
            repair_rate=a.repair_mib * MIB,
            repair_grace=a.grace,
            zone_aware=a.zone_aware,
            recheck=a.recheck,
        ),
    )
    return cfg, a.out, not a.no_scenarios


def main(argv: list[str] | None = None) -> int:
    cfg, out, scenarios = parse(argv)
    result = simulate(cfg, scenarios=scenarios)
    written = report.write(result, out) + plots.all_plots(result, out)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
