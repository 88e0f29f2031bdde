"""A local cluster gives each process only the secrets its kind needs (issue 12, item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster


def test_nodes_never_receive_the_api_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DFS_API_SECRET", "from-the-shell-0123456789abcdef0123456789")
    c = LocalCluster(tmp_path, nodes=2)
    api = c._api_proc().env
    assert len(api["DFS_API_SECRET"]) >= 32
    assert api["DFS_API_SECRET"] != api["DFS_CLUSTER_SECRET"]
    for i in (1, 2):
        node = c._node_proc(i).env
        assert "DFS_API_SECRET" not in node
        assert node["DFS_CLUSTER_SECRET"] == api["DFS_CLUSTER_SECRET"]
        assert "DFS_ADMIN_TOKEN" not in node
