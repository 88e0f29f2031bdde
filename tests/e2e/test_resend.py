"""A re-upload over rotten copies leaves good copies (issue 12 item 5), with real processes.

The cluster (API + 3 nodes, factor 2) and the CLI are the installed console scripts. Every
copy of a committed file is damaged on disk behind the nodes' backs (no read or scrub sees
it); another tenant uploads the same bytes. The nodes rewrite each chunk they are sent, so
afterwards every copy on disk verifies. Before, a held chunk took a fast path that kept the
rotten copy and issued a receipt for it: the second file committed with 0 good copies.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dfs import protocol
from dfs.localcluster import LocalCluster, http_json
from tests.e2e import node_disk
from tests.e2e.conftest import run_cli, started_cluster

pytestmark = pytest.mark.e2e

MIB = 1 << 20


@pytest.fixture
def sqlite_cluster(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalCluster]:
    meta_url = f"sqlite:///{tmp_path / 'cluster' / 'meta.db'}"
    with started_cluster(tmp_path, meta_url, monkeypatch, request) as c:
        yield c


def copies_on_disk(c: LocalCluster) -> dict[tuple[int, str], bool]:
    """Every chunk copy on every node (a file, or a record in a pack file), as (node, chunk
    id): does it hash to its id?"""
    return {
        (i, cid): hashlib.sha256(data).hexdigest() == cid
        for i in range(1, c.nodes + 1)
        for cid, data in node_disk.held(c.base, i, rotten=True).items()
    }


def tenant_token(c: LocalCluster, tenant: str) -> str:
    http_json(f"{c.api_url}{protocol.ADMIN_TENANTS}", c.admin_token, body={"tenant": tenant})
    body = {"tenant": tenant, "role": "user", "label": "e2e"}
    return str(http_json(f"{c.api_url}{protocol.ADMIN_TOKENS}", c.admin_token, body=body)["token"])


def as_tenant(token: str, *args: str) -> dict[str, Any]:
    out = run_cli(*args, "--json", env={"DFS_TOKEN": token}).stdout
    [answer] = [json.loads(line) for line in out.splitlines() if line.strip()]
    return dict(answer)


def test_re_upload_over_rotten_copies_leaves_good_copies(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = sqlite_cluster
    data = random.Random(12).randbytes(6 * MIB + 321)
    src = tmp_path / "same.bin"
    src.write_bytes(data)
    alice, bob = tenant_token(c, "alice"), tenant_token(c, "bob")
    first = as_tenant(alice, "upload", "--chunk-size", str(MIB), c.api_url, str(src))
    copies = copies_on_disk(c)
    assert len(copies) == 2 * first["chunks"]
    assert all(copies.values())
    for node, cid in copies:  # a flipped byte in every copy, in place
        node_disk.flip_byte(c.base, node, cid, mask=0x10)
    assert not any(copies_on_disk(c).values())

    second = as_tenant(bob, "upload", "--chunk-size", str(MIB), c.api_url, str(src))
    assert second["new_chunks"] == second["chunks"] == first["chunks"]  # bob sent every chunk
    after = copies_on_disk(c)
    assert sorted(after) == sorted(copies)
    assert all(after.values()), [cid[:12] for (_, cid), good in after.items() if not good]
    assert list(c.base.glob("node*/quarantine/*")) == []
    for token, up, out in ((bob, second, "b.out"), (alice, first, "a.out")):
        as_tenant(token, "download", c.api_url, up["file_id"], str(tmp_path / out))
        assert (tmp_path / out).read_bytes() == data
