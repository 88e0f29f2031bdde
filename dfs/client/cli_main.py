"""``dfs-client``'s console-script entry point: imports the command line cheaply, then runs it.

Every ``dfs-client`` run imports the CLI (click) and, for a command that sends requests, the
client library (aiohttp, asyncio: hundreds of modules; ``make_client`` imports it through
``import_quietly``). The allocations of those imports set off cyclic garbage collections that
find next to nothing to free, so the collector is off while they run; afterwards ``gc.freeze``
moves everything they created into the permanent generation, so the collections of the
command itself (a restore of thousands of files allocates a lot) never walk the modules'
objects again.

The collector stays on for the command, but runs less often (``GC_THRESHOLD``): a transfer
of many files makes many small objects (scans, plans, results) that live to its end, and
young collections every 700 allocations had cost a tenth of the client's CPU (issue 19).
This is the process's whole collector policy; the one other piece, ``dfs.client.plans``
freezing each batch of decoded plans, is scoped to a restore and undone at its end. Code
that calls ``dfs.client.cli.main`` itself (tests, embedders) gets none of it.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TypeVar


def import_quietly(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with the collector off, then ``gc.freeze()``."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    return quietly(lambda: importlib.import_module(name))


T = TypeVar("T")


def quietly(load: Callable[[], T]) -> T:
    """``load()`` (imports) with the collector off, then ``gc.freeze()``."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        got = load()
    finally:
        if was_enabled:
            gc.enable()
    gc.freeze()
    return got


GC_THRESHOLD = 20_000  # objects allocated between young collections (Python's default: 700)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script (``dfs-client``); ``dfs.client.cli.main`` does the work."""
    cli = import_quietly("dfs.client.cli")
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    code: int = cli.main(argv)
    return code
