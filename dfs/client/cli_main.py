"""``dfs-client``'s console-script entry point: imports the command line cheaply, then runs it.

Every ``dfs-client`` run imports the CLI (click) and, for a command that sends requests, the
client library (aiohttp, asyncio: hundreds of modules; ``make_client`` imports it through
``import_quietly``). The allocations of those imports set off cyclic garbage collections that
find next to nothing to free, so the collector is off while they run; afterwards ``gc.freeze``
moves everything they created into the permanent generation, so the collections of the
command itself (a restore of thousands of files allocates a lot) never walk the modules'
objects again. The collector is on for the command: nothing else changes.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType


def import_quietly(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with the collector off, then ``gc.freeze()``."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        module = importlib.import_module(name)
    finally:
        if was_enabled:
            gc.enable()
    gc.freeze()
    return module


def main(argv: Sequence[str] | None = None) -> int:
    """The console script (``dfs-client``); ``dfs.client.cli.main`` does the work."""
    cli = import_quietly("dfs.client.cli")
    code: int = cli.main(argv)
    return code
