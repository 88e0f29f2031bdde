"""What ``dfs-client upload`` starts before it loads the client library (aiohttp, ~0.1-0.2 s
of imports on one core), so that the work runs beside those imports: standard input
spooled, the listing
(``dfs.client.early_listing``), a big file's scan (``dfs.client.early_scan``) and the first
batches' plans (``dfs.client.early_batches``). Each is stopped by the command's cleanup
(``contextlib.ExitStack``) whatever happens. Nothing here loads aiohttp or click."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from dfs.chunking import ChunkerProfile
from dfs.client.early_batches import EarlyBatches
from dfs.client.early_listing import ListedEarly
from dfs.client.early_scan import EarlyScan
from dfs.client.local_files import LocalFile, Skipped, spool, storable, walk
from dfs.client.profiles import Target

STDIN = Path("-")


def spooled_stdin(
    paths: tuple[Path, ...], cleanup: contextlib.ExitStack
) -> tuple[tuple[Path, ...], Path | None]:
    """``paths`` with standard input (``-``) spooled to a temp file (removed by ``cleanup``)
    in its place, and that file; ``paths`` as they are and None without it."""
    if STDIN not in paths:
        return paths, None
    spooled = spool(sys.stdin.buffer)
    cleanup.callback(spooled.unlink, missing_ok=True)
    return (spooled,), spooled


def listing(
    paths: tuple[Path, ...],
    prefix: str,
    name: str | None,
    follow: bool,
    spooled: Path | None,
    skipped: list[Skipped],
    cleanup: contextlib.ExitStack,
) -> Iterable[LocalFile]:
    """The files to upload: the walk itself, on a thread from now on, while the client
    library is imported and then while the first files are sent (``dfs.client.walk_ahead``;
    ``cleanup`` stops it); the one file named ``name`` (standard input when ``spooled``: its
    temp file's attributes are not kept). A file whose stored name the API would refuse is
    reported in ``skipped`` (``storable``), not sent."""
    items = walk(paths, prefix, follow_symlinks=follow, skipped=skipped)
    if name is None:
        early = ListedEarly(storable(items, skipped))
        cleanup.callback(early.stop)
        return early
    keep = spooled is None
    return list(
        storable([replace(it, name=prefix + name, keep_attrs=keep) for it in items], skipped)
    )


def early_scan(
    path: Path, profile: ChunkerProfile, cleanup: contextlib.ExitStack
) -> EarlyScan | None:
    """A big file's scan from now on, beside the imports (``dfs.client.early_scan``),
    stopped by ``cleanup``; None for a file scanned after them."""
    early = EarlyScan.start(path, profile)
    if early is not None:
        cleanup.callback(early.stop)
    return early


def early_batches(
    target: Target,
    items: Iterable[LocalFile],
    profile: ChunkerProfile,
    cleanup: contextlib.ExitStack,
) -> EarlyBatches | None:
    """The first batches of a listing planned from now on, beside the imports
    (``dfs.client.early_batches``), stopped by ``cleanup``; None for a single named file."""
    if not isinstance(items, ListedEarly):
        return None
    plans = EarlyBatches(target.url, target.token, items, profile)
    cleanup.callback(plans.stop)
    return plans
