"""Schemathesis against a running API + 3 nodes on loopback, from dfs/openapi/api.yaml.

The cluster runs in-process on its own event loop in a background thread (schemathesis
drives requests synchronously). Every operation gets valid and invalid examples (a bounded
number each, so CI stays within a few minutes), sent with the admin token and a tenant's
token; the run fails on any 5xx, any undocumented status, and any body or content type that
the spec does not allow.

Random file ids only ever find nothing, so every other valid example of an operation with a
``file_id`` in its path gets a real one instead: files of the caller's tenant uploaded for the
run (``DELETE`` gets its own, which it deletes), and the signed download a real signature.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
import yarl
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


FILES_EACH = 3  # files per caller for reads, and as many for DELETE to delete


@dataclass
class Fuzzed:
    """A running cluster and what each caller ("admin", "tenant") owns in it."""

    url: str
    tokens: dict[str, str]
    kept: dict[str, list[str]]  # file ids for reads
    victims: dict[str, list[str]]  # file ids for DELETE
    signed: dict[str, dict[str, str]]  # a real signed download: file_id, tenant, sig


async def _own_files(
    url: str, token: str, base: Path, who: str
) -> tuple[list[str], dict[str, str]]:
    ids = []
    async with Client(url, token=token) as client:
        for i in range(2 * FILES_EACH):
            path = base / f"{who}-{i}.bin"
            path.write_bytes(random.Random(f"{who}{i}").randbytes(3000 + i))
            ids.append((await client.upload(path)).file_id)
        link = yarl.URL((await client.download_url(ids[0]))["download_url"])
    return ids, {"file_id": ids[0], **link.query}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    runner = LoopThread()
    base: Path = tmp_path_factory.mktemp("schemathesis")
    c: InProcessCluster = runner.run(start_cluster(base))

    async def make_tenant() -> str:
        async with Client(c.api.url, token=ADMIN_TOKEN) as admin:
            await admin.api.create_tenant("fuzz")
            token: str = (await admin.api.create_token("fuzz", "user", "schemathesis"))["token"]
            return token

    def populate(tokens: dict[str, str]) -> Fuzzed:
        out = Fuzzed(c.api.url, tokens, {}, {}, {})
        for who, token in tokens.items():
            ids, signed = runner.run(_own_files(c.api.url, token, base, who))
            out.kept[who], out.victims[who] = ids[:FILES_EACH], ids[FILES_EACH:]
            out.signed[who] = signed
        return out

    async def stop() -> None:
        for node in c.nodes:
            await node.stop()
        await c.api.stop()

    try:
        yield populate({"admin": ADMIN_TOKEN, "tenant": runner.run(make_tenant())})
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
    cluster: Fuzzed, operation: Any, who: str, mode: GenerationMode
) -> None:
    token = cluster.tokens[who]
    session = requests.Session()
    statuses: list[int] = []
    examples = 0
    pool = cluster.victims[who] if operation.method.upper() == "DELETE" else cluster.kept[who]

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
        nonlocal examples
        examples += 1
        if (
            mode == GenerationMode.POSITIVE
            and examples % 2
            and "file_id" in (case.path_parameters or {})
        ):
            if operation.path.startswith("/signed-download/"):
                signed = cluster.signed[who]
                case.path_parameters["file_id"] = signed["file_id"]
                case.query = {
                    **(case.query or {}),
                    "tenant": signed["tenant"],
                    "sig": signed["sig"],
                }
            else:
                case.path_parameters["file_id"] = pool[(examples // 2) % len(pool)]
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(base_url=cluster.url, session=session, headers=headers, timeout=30)
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run: Callable[[], None] = check
    try:
        run()
    finally:
        session.close()
    print(operation.label, who, mode.value, sorted(set(statuses)))
    assert statuses
