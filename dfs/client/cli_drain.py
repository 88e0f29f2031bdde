"""``dfs-client admin drain NODE``: empty a storage node before removing it (admin token).

Starting a drain stops new placements on the node; the API's repair copies each of its
chunks to other nodes, then trims the node's copies. ``--wait SECONDS`` polls the status until
every chunk has REPLICATION_FACTOR copies elsewhere (exit 0: the node can be stopped and
removed) or the time is up (exit 1). ``--status`` only reports, ``--cancel`` stops the drain.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click

from dfs.client.cli_common import (
    UrlCommand,
    emit,
    fail,
    json_option,
    make_client,
    run,
    target_options,
)
from dfs.client.profiles import Target

POLL_SECONDS = 2.0
NOT_DONE = 1


def status_text(body: dict[str, Any]) -> str:
    state = "done" if body["done"] else "draining" if body["draining"] else "not draining"
    text = f"{body['node_id']}: {state}, {body['short']} of {body['chunks']} chunk(s) short"
    settles_at = body.get("settles_at")  # an older API's status has none
    if body["draining"] and not body["done"] and settles_at is not None:
        left = float(settles_at) - time.time()
        if left > 0:  # commits begun before the drain may still land: dfs.api.drain
            text += f", settling for {left:.0f} s more"
    return text


async def _drain(target: Target, node_id: str, method: str, wait: float | None) -> dict[str, Any]:
    deadline = time.monotonic() + (wait or 0.0)
    async with make_client(target) as client:
        body = await client.api.drain(node_id, method)
        while wait is not None and not body["done"] and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            body = await client.api.drain(node_id)
        return body


@click.command("drain", cls=UrlCommand)
@json_option
@target_options
@click.option("--status", "status_only", is_flag=True, help="Only report how far it got.")
@click.option("--cancel", is_flag=True, help="Stop draining: the node takes new chunks again.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Poll until every chunk has its copies elsewhere (exit 1 if not by then).",
)
@click.argument("node_id")
def drain(
    as_json: bool,
    target: Target,
    status_only: bool,
    cancel: bool,
    wait: float | None,
    node_id: str,
) -> None:
    """Drain NODE_ID for removal: no new chunks on it, its chunks copied elsewhere."""
    if status_only and cancel:
        raise click.UsageError("--status and --cancel exclude each other")
    method = "GET" if status_only else "DELETE" if cancel else "POST"
    body = run(_drain(target, node_id, method, None if cancel else wait))
    emit(as_json, body, status_text(body))
    if wait is not None and not cancel and not body["done"]:
        fail(f"drain of {node_id} not done after {wait:g} s", NOT_DONE)
