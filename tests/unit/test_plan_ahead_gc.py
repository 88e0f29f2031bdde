"""PlanAhead keeps decoded plans out of the cyclic GC's sight while a download runs
(``gc.freeze``) and gives them back at close, unless someone else had frozen objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from dfs.client.connection import Connection
from dfs.client.plans import PlanAhead


class _Api:
    async def download_plans(self, ids: list[str], *, batched: bool) -> list[dict[str, Any]]:
        return [{"file_id": i, "size": 1, "chunks": []} for i in ids]


class _Conn:
    api = _Api()
    proxy = False


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_plans_are_frozen_while_the_download_runs_and_thawed_at_close() -> None:
    parts = [[("a", Path("a")), ("b", Path("b"))], [("c", Path("c"))]]
    ahead = PlanAhead(cast(Connection, _Conn()), parts, {})
    first = await ahead.take(0)
    assert set(first) == {"a", "b"}
    assert gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()
    assert set(await ahead.take(1)) == {"c"}
    assert gc.get_freeze_count() >= frozen  # each batch's plans frozen too
    await ahead.close()
    assert gc.get_freeze_count() == 0


async def test_what_someone_else_froze_stays_frozen() -> None:
    gc.freeze()
    before = gc.get_freeze_count()
    ahead = PlanAhead(cast(Connection, _Conn()), [], {})
    await ahead.close()
    assert gc.get_freeze_count() >= before
