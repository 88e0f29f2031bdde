"""``dfs-client``'s console-script entry point: imports the command line cheaply, then runs it.

Every ``dfs-client`` run imports the CLI and the client library (aiohttp, asyncio, click:
hundreds of modules) before its first request. The allocations of those imports trigger
cyclic garbage collections that find nothing worth freeing, so the collector is off while they
run; afterwards ``gc.freeze`` moves everything they created into the permanent generation, so
the collections of the command itself (a restore of thousands of files allocates a lot) never
walk the modules' objects again. The collector is on for the command: nothing else changes.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The console script (``dfs-client``); ``dfs.client.cli.main`` does the work."""
    gc.disable()
    try:
        from dfs.client.cli import main as cli_main
    finally:
        gc.enable()
    gc.freeze()
    return cli_main(argv)
