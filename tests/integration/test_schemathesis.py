"""Schemathesis against a running API + 3 nodes on loopback, from dfs/openapi/api.yaml.

The cluster runs in-process on its own event loop in a background thread (schemathesis
drives requests synchronously). Every operation gets valid and invalid examples (a bounded
number each, so CI stays within a few minutes), sent with the admin token and a tenant's
token; the run fails on any 5xx, any undocumented status, and any body or content type that
the spec does not allow.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dfs.client import Client
from dfs.openapi import API_SPEC
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster, start_cluster

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread, for running the cluster beside sync test code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(api url, a tenant's token) of a running cluster."""
    runner = LoopThread()
    base: Path = tmp_path_factory.mktemp("schemathesis")
    c: InProcessCluster = runner.run(start_cluster(base))

    async def make_tenant() -> str:
        async with Client(c.api.url, token=ADMIN_TOKEN) as admin:
            await admin.api.create_tenant("fuzz")
            token: str = (await admin.api.create_token("fuzz", "user", "schemathesis"))["token"]
            return token

    async def stop() -> None:
        for node in c.nodes:
            await node.stop()
        await c.api.stop()

    try:
        yield c.api.url, runner.run(make_tenant())
    finally:
        runner.run(stop())
        runner.close()


def cases() -> list[Any]:
    """(operation, mode) pairs; invalid examples only where there is input to make invalid."""
    schema = schemathesis.openapi.from_path(str(API_SPEC))
    out = []
    for result in schema.get_all_operations():
        op = result.ok()
        out.append(pytest.param(op, GenerationMode.POSITIVE, id=f"{op.label} valid"))
        if "parameters" in op.definition.raw or "requestBody" in op.definition.raw:
            out.append(pytest.param(op, GenerationMode.NEGATIVE, id=f"{op.label} invalid"))
    return out


@pytest.mark.parametrize("who", ["admin", "tenant"])
@pytest.mark.parametrize(("operation", "mode"), cases())
def test_api_conforms_to_its_spec(
    cluster: tuple[str, str], operation: Any, who: str, mode: GenerationMode
) -> None:
    url, tenant_token = cluster
    token = ADMIN_TOKEN if who == "admin" else tenant_token
    session = requests.Session()
    statuses: list[int] = []

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        # our credentials replace any the example made up, so requests get past auth
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(base_url=url, session=session, headers=headers, timeout=30)
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run: Callable[[], None] = check
    try:
        run()
    finally:
        session.close()
    print(operation.label, who, mode.value, sorted(set(statuses)))
    assert statuses
