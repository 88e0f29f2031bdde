"""A big XML body (over 64 KiB: a DeleteObjects of many keys) holds one of its tenant's body
slots until its request is answered, not only while it is read (``dfs.s3.context.hold``):
the bytes, the parsed document and the keys it names live until then, so however many
connections a tenant opens, the gateway holds at most its share of them. The gateway runs in
process (its slots made small), boto3 drives it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from dfs.api.body_slots import BigBodySlots
from dfs.s3 import routes_deletes
from dfs.s3.app import make_app
from dfs.s3.context import BODIES
from dfs.server import runner_kwargs
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens
from tests.integration.test_s3_tenancy import refused, run, s3_client

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

DEADLINE = 20.0
KEYS = [f"{i:04d}-" + "k" * 120 for i in range(600)]  # a DeleteObjects body of ~90 KiB


@contextlib.asynccontextmanager
async def gateway_with_one_body_slot(inproc: InProcessCluster) -> AsyncIterator[str]:
    """The gateway in process, a tenant's big bodies one at a time (waits of 0.3 s)."""
    app = make_app(inproc.api.coordinator)
    app[BODIES] = BigBodySlots(total=4, per_tenant=1, wait=0.3)
    runner = web.AppRunner(app, auto_decompress=False, **runner_kwargs())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def delete_all(s3: Any) -> dict[str, Any]:
    objects = [{"Key": k} for k in KEYS]
    answer: dict[str, Any] = s3.delete_objects(
        Bucket="xml", Delete={"Objects": objects, "Quiet": True}
    )
    return answer


async def test_a_big_xml_body_holds_its_slot_until_answered(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    released = asyncio.Event()
    started = asyncio.Event()
    real = routes_deletes._delete_one

    async def stalled(*args: Any) -> str:
        started.set()
        await released.wait()  # the request is past its body, not answered yet
        return await real(*args)

    monkeypatch.setattr(routes_deletes, "_delete_one", stalled)
    async with gateway_with_one_body_slot(inproc) as url:
        s3 = await s3_client(inproc.api.url, alice, url)
        await run(s3.create_bucket, Bucket="xml")
        await run(s3.put_object, Bucket="xml", Key=KEYS[0], Body=b"x")
        first = asyncio.create_task(run(delete_all, s3=s3))
        await asyncio.wait_for(started.wait(), DEADLINE)
        # the first holds alice's one slot while it works: her second big body waits its
        # 0.3 s and is refused, its body never read
        assert await asyncio.wait_for(refused(delete_all, s3=s3), DEADLINE) == "SlowDown"
        released.set()
        answer = await asyncio.wait_for(first, DEADLINE)
        assert answer.get("Errors", []) == []
        assert "Contents" not in await run(s3.list_objects_v2, Bucket="xml")
        # answered: the slot is free again
        assert (await asyncio.wait_for(run(delete_all, s3=s3), DEADLINE)).get("Errors", []) == []
