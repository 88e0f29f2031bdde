"""``dfs-api init-tables`` creates the DynamoDB schema, and running it again changes nothing."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from dfs.localcluster import console_script
from dfs.meta.dynamo.schema import TABLES
from tests.conftest import DYNAMODB_ENV

pytestmark = pytest.mark.e2e


def test_init_tables_is_idempotent(moto_endpoint: str) -> None:
    prefix = f"init{uuid.uuid4().hex[:8]}-"
    url = f"dynamodb://?endpoint_url={moto_endpoint}&table_prefix={prefix}"
    env = {**os.environ, **DYNAMODB_ENV}
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [console_script("dfs-api"), "init-tables", "--url", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    created = dict(line.split("\t") for line in outputs[0].splitlines())
    assert set(created) == set(TABLES)
    assert all(name.startswith(prefix) for name in created.values())
