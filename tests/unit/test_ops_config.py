"""DFS_LOG_FORMAT / DFS_LOG_LEVEL, DFS_METRICS_TOKEN, and the JSON log line shape."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from dfs.auth import hash_token
from dfs.config import load_api_config, load_node_config
from dfs.errors import ConfigError
from dfs.logs import JsonFormatter, configure_logging
from dfs.metrics import ApiMetrics, NodeMetrics

SECRET = "unit-test-cluster-secret-0123456789abcdef"
TOKEN = "unit-test-metrics-token-0123456789abcdef"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_metrics_token_is_kept_hashed() -> None:
    env = {"DFS_CLUSTER_SECRET": SECRET, "DFS_METRICS_TOKEN": TOKEN}
    assert load_api_config(env).metrics_token_hash == hash_token(TOKEN)
    assert load_node_config(env, lambda _: "n1").metrics_token_hash == hash_token(TOKEN)
    assert load_api_config({"DFS_CLUSTER_SECRET": SECRET}).metrics_token_hash is None
    with pytest.raises(ConfigError, match="DFS_METRICS_TOKEN"):
        load_api_config({"DFS_CLUSTER_SECRET": SECRET, "DFS_METRICS_TOKEN": "short"})


@pytest.mark.usefixtures("restore_logging")
def test_log_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="DFS_LOG_FORMAT"):
        configure_logging({"DFS_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="DFS_LOG_LEVEL"):
        configure_logging({"DFS_LOG_LEVEL": "chatty"})
    configure_logging({"DFS_LOG_FORMAT": "json", "DFS_LOG_LEVEL": "warning"})
    root = logging.getLogger()
    assert root.level == logging.WARNING
    assert isinstance(root.handlers[0].formatter, JsonFormatter)


def test_json_lines_carry_message_extra_and_traceback() -> None:
    fmt = JsonFormatter()
    rec = logging.LogRecord("dfs.node", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    rec.node_id = "node1"
    line = json.loads(fmt.format(rec))
    assert line["message"] == "hello x"
    assert line["level"] == "INFO"
    assert line["logger"] == "dfs.node"
    assert line["node_id"] == "node1"
    assert line["ts"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("dfs", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(fmt.format(rec))["exc"]


def test_metrics_render_and_hooks() -> None:
    api = ApiMetrics()
    api.observe("/init-upload", "POST", 201, 0.01, 100, 200)
    api.refresh({"total_files": 3, "dedup_ratio": 1.5, "live_nodes": 2})
    text = api.render().decode()
    assert 'dfs_http_requests_total{method="POST",route="/init-upload",status="201"} 1.0' in text
    assert "dfs_dedup_ratio 1.5" in text
    assert "dfs_under_replicated_chunks NaN" in text
    api.set_repair_status(under_replicated=2, repair_queue=1, replication_queue=0)
    assert "dfs_under_replicated_chunks 2.0" in api.render().decode()
    node = NodeMetrics()
    node.refresh(chunks=4, used=400, capacity=1000, registered=True)
    node.set_replication_queue(7)
    text = node.render().decode()
    assert "dfs_node_chunks_stored 4.0" in text
    assert "dfs_node_replication_queue_size 7.0" in text
    assert "dfs_node_registered 1.0" in text
