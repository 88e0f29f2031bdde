"""Configuration loaders: defaults, and every invalid value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfs.config import (
    DEFAULT_API_PORT,
    DEFAULT_BIND_HOST,
    DEFAULT_DATA_DIR,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_HEARTBEAT_TIMEOUT,
    DEFAULT_NODE_PORT,
    DEFAULT_REPLICATION_FACTOR,
    DEFAULT_REPLICATION_TIMEOUT,
    ApiConfig,
    NodeConfig,
    default_meta_url,
    load_api_config,
    load_node_config,
)
from dfs.errors import ConfigError


def generated_id(data_dir: Path) -> str:
    return f"gen-{data_dir.name}"


SECRET = "s" * 32
BASE = {"DFS_CLUSTER_SECRET": SECRET}


def api_config(env: dict[str, str]) -> ApiConfig:
    return load_api_config({**BASE, **env})


def node(env: dict[str, str]) -> NodeConfig:
    return load_node_config({**BASE, **env}, generated_id)


@pytest.mark.parametrize(
    "loader", [load_api_config, lambda env: load_node_config(env, generated_id)]
)
@pytest.mark.parametrize("env", [{}, {"DFS_CLUSTER_SECRET": "short"}, {"DFS_CLUSTER_SECRET": " "}])
def test_cluster_secret_is_required(loader: object, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        loader(env)  # type: ignore[operator]
    assert info.value.field == "DFS_CLUSTER_SECRET"


def test_admin_token_is_kept_hashed() -> None:
    token = "t" * 40
    cfg = api_config({"DFS_ADMIN_TOKEN": token})
    assert cfg.admin_token_hash is not None
    assert token not in repr(cfg)
    with pytest.raises(ConfigError, match="DFS_ADMIN_TOKEN"):
        api_config({"DFS_ADMIN_TOKEN": "short"})
    with pytest.raises(ConfigError, match="DFS_CAPABILITY_TTL"):
        api_config({"DFS_CAPABILITY_TTL": "3600"})


def test_api_defaults() -> None:
    cfg = api_config({})
    assert cfg == ApiConfig(
        host=DEFAULT_BIND_HOST,
        port=DEFAULT_API_PORT,
        data_dir=Path(DEFAULT_DATA_DIR),
        meta_url=default_meta_url(Path(DEFAULT_DATA_DIR)),
        replication_factor=DEFAULT_REPLICATION_FACTOR,
        replication_strategy="sync",
        replication_timeout=DEFAULT_REPLICATION_TIMEOUT,
        heartbeat_timeout=DEFAULT_HEARTBEAT_TIMEOUT,
        cluster_secret=SECRET.encode(),
    )
    assert cfg.host == "127.0.0.1"  # loopback unless asked otherwise
    assert cfg.meta_url.startswith("sqlite:///")
    assert cfg.meta_url.endswith("/meta.db")


def test_api_values(tmp_path: Path) -> None:
    cfg = api_config(
        {
            "DFS_API_HOST": "0.0.0.0",
            "DFS_API_PORT": "0",
            "DFS_DATA_DIR": str(tmp_path),
            "REPLICATION_FACTOR": " 3 ",
            "REPLICATION_TIMEOUT": "2.5",
            "NODE_HEARTBEAT_TIMEOUT": "9",
            "DFS_API_WORKERS": "4",
        }
    )
    assert cfg.workers == 4
    assert (cfg.host, cfg.port, cfg.data_dir) == ("0.0.0.0", 0, tmp_path)
    assert cfg.meta_url == f"sqlite:///{tmp_path.resolve() / 'meta.db'}"
    assert (cfg.replication_factor, cfg.replication_timeout, cfg.heartbeat_timeout) == (3, 2.5, 9)


def test_blank_values_mean_default() -> None:
    assert api_config({"DFS_API_PORT": "", "REPLICATION_FACTOR": "  "}) == api_config({})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DFS_API_PORT", "abc"),
        ("DFS_API_PORT", "65536"),
        ("DFS_API_PORT", "-1"),
        ("DFS_API_HOST", "http://x"),
        ("DFS_API_HOST", "a b"),
        ("REPLICATION_FACTOR", "0"),
        ("REPLICATION_FACTOR", "-2"),
        ("REPLICATION_FACTOR", "2.5"),
        ("REPLICATION_STRATEGY", "eventually"),
        ("REPLICATION_TIMEOUT", "0"),
        ("REPLICATION_TIMEOUT", "-1"),
        ("REPLICATION_TIMEOUT", "soon"),
        ("REPLICATION_TIMEOUT", "nan"),
        ("REPLICATION_TIMEOUT", "inf"),
        ("NODE_HEARTBEAT_TIMEOUT", "0"),
        ("DFS_API_WORKERS", "0"),
        ("DFS_API_WORKERS", "65"),
        ("DFS_API_WORKERS", "two"),
        ("DFS_META_URL", "mysql://db/x"),
        ("DFS_META_URL", "/var/lib/dfs/meta.db"),
    ],
)
def test_api_invalid_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        api_config({name: value})
    assert info.value.field == name
    assert info.value.message.startswith(f"{name}=")
    assert repr(value.strip()) in info.value.message or repr(value) in info.value.message


def test_api_accepts_dynamodb_url() -> None:
    cfg = api_config({"DFS_META_URL": "dynamodb://us-east-1/dfs"})
    assert cfg.meta_url == "dynamodb://us-east-1/dfs"


def test_node_defaults() -> None:
    cfg = node({})
    assert cfg == NodeConfig(
        node_id=f"gen-{Path(DEFAULT_DATA_DIR).name}",
        host=DEFAULT_BIND_HOST,
        port=DEFAULT_NODE_PORT,
        advertise_host=DEFAULT_BIND_HOST,
        zone="",
        data_dir=Path(DEFAULT_DATA_DIR),
        meta_url=None,
        api_url=f"http://{DEFAULT_BIND_HOST}:{DEFAULT_API_PORT}",
        capacity_bytes=None,
        heartbeat_interval=DEFAULT_HEARTBEAT_INTERVAL,
        heartbeat_timeout=DEFAULT_HEARTBEAT_TIMEOUT,
        replication_timeout=DEFAULT_REPLICATION_TIMEOUT,
        cluster_secret=SECRET.encode(),
    )
    # the API and a node started with no configuration meet: the node registers through the
    # API where it listens with no configuration


def test_node_values(tmp_path: Path) -> None:
    cfg = node(
        {
            "NODE_ID": "node-7",
            "NODE_PORT": "9007",
            "DFS_NODE_HOST": "0.0.0.0",
            "DFS_NODE_ADVERTISE_HOST": "10.0.0.7",
            "DFS_NODE_ZONE": "eu-1a",
            "DFS_DATA_DIR": str(tmp_path),
            "DFS_NODE_CAPACITY": "1000000",
            "NODE_HEARTBEAT_INTERVAL": "1",
            "NODE_HEARTBEAT_TIMEOUT": "3.5",
            "DFS_PACK_THRESHOLD": "0",
            "DFS_PACK_SIZE": "1048576",
            "DFS_COMPACT_INTERVAL": "30",
        }
    )
    assert (cfg.node_id, cfg.port, cfg.host, cfg.advertise_host) == (
        "node-7",
        9007,
        "0.0.0.0",
        "10.0.0.7",
    )
    assert (cfg.zone, cfg.data_dir, cfg.capacity_bytes) == ("eu-1a", tmp_path, 1_000_000)
    assert (cfg.heartbeat_interval, cfg.heartbeat_timeout) == (1.0, 3.5)
    assert (cfg.pack_threshold, cfg.pack_size) == (0, 1 << 20)  # 0: every new chunk a file
    assert cfg.compact_interval == 30.0


def test_node_id_defaults_from_the_data_dir(tmp_path: Path) -> None:
    assert node({"DFS_DATA_DIR": str(tmp_path / "d1")}).node_id == "gen-d1"


def test_node_advertise_host_defaults_to_the_bind_host() -> None:
    assert node({"DFS_NODE_HOST": "10.1.2.3"}).advertise_host == "10.1.2.3"
    assert node({"DFS_NODE_HOST": "::1"}).advertise_host == "::1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NODE_PORT", "abc"),
        ("NODE_PORT", "70000"),
        ("NODE_ID", "../etc"),
        ("NODE_ID", "a/b"),
        ("NODE_ID", "x" * 65),
        ("DFS_NODE_HOST", "host:9000"),
        ("DFS_NODE_ADVERTISE_HOST", "0.0.0.0"),
        ("DFS_NODE_ADVERTISE_HOST", "::"),
        ("DFS_NODE_ADVERTISE_HOST", "::0"),
        ("DFS_NODE_ADVERTISE_HOST", "0:0::0"),
        ("DFS_NODE_ADVERTISE_HOST", "user@host"),
        ("DFS_META_URL", "mysql://"),
        ("DFS_API_URL", "ftp://api"),
        ("DFS_API_URL", "api:8080"),
        ("DFS_NODE_CAPACITY", "0"),
        ("DFS_NODE_CAPACITY", "1GB"),
        ("NODE_HEARTBEAT_INTERVAL", "0"),
        ("NODE_HEARTBEAT_INTERVAL", "inf"),
        ("NODE_HEARTBEAT_TIMEOUT", "-5"),
        ("NODE_HEARTBEAT_TIMEOUT", "5"),  # == the default interval
        ("NODE_HEARTBEAT_TIMEOUT", "2"),  # < the default interval
        ("REPLICATION_TIMEOUT", "0"),
        ("DFS_PACK_THRESHOLD", "-1"),
        ("DFS_PACK_THRESHOLD", "256k"),
        ("DFS_PACK_SIZE", "0"),
        ("DFS_COMPACT_INTERVAL", "0"),
        ("DFS_NODE_ZONE", "z" * 65),  # the API refuses a heartbeat's longer zone
        ("DFS_NODE_ZONE", "a\tb"),
    ],
)
def test_node_invalid_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        node({name: value})
    assert info.value.field == name
    assert info.value.message.startswith(f"{name}=")


def test_bind_all_without_advertise_host_is_refused_naming_advertise_host() -> None:
    with pytest.raises(ConfigError) as info:
        node({"DFS_NODE_HOST": "0.0.0.0"})
    assert info.value.field == "DFS_NODE_ADVERTISE_HOST"


def test_heartbeat_timeout_must_exceed_interval() -> None:
    with pytest.raises(ConfigError, match="NODE_HEARTBEAT_INTERVAL"):
        node({"NODE_HEARTBEAT_INTERVAL": "10", "NODE_HEARTBEAT_TIMEOUT": "10"})
    cfg = node({"NODE_HEARTBEAT_INTERVAL": "10", "NODE_HEARTBEAT_TIMEOUT": "10.5"})
    assert cfg.heartbeat_timeout == 10.5


def test_node_registration_targets() -> None:
    api_only = node({"DFS_API_URL": "http://api:8080/"})
    assert api_only.api_url == "http://api:8080"  # trailing slash dropped
    assert api_only.meta_url is None

    meta_only = node({"DFS_META_URL": "sqlite:///srv/meta.db"})
    assert (meta_only.meta_url, meta_only.api_url) == ("sqlite:///srv/meta.db", None)

    both = node({"DFS_META_URL": "dynamodb://eu-west-1/dfs", "DFS_API_URL": "https://api"})
    assert (both.meta_url, both.api_url) == ("dynamodb://eu-west-1/dfs", "https://api")

    # a SQLite file is never written by a node that knows the API: a node stopped inside
    # its write would hold the file's one write lock against the API
    sqlite_both = node({"DFS_META_URL": "sqlite:///srv/meta.db", "DFS_API_URL": "https://api"})
    assert (sqlite_both.meta_url, sqlite_both.api_url) == (None, "https://api")


def test_loaders_do_not_read_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFS_API_PORT", "abc")
    monkeypatch.setenv("NODE_PORT", "abc")
    assert api_config({}).port == DEFAULT_API_PORT
    assert node({}).port == DEFAULT_NODE_PORT
