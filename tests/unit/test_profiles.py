"""Where a CLI command sends its request (dfs.client.profiles) and how its text looks
(dfs.client.cli_output): the URL rule, profile precedence, the 0600 config file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from dfs.client import cli_output, profiles
from dfs.client.profiles import Config, Profile, Target, resolve
from dfs.errors import InvalidRequest

UUID = "6f1c2b3a-1111-4222-8333-444455556666"


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("localhost:8080/", "http://localhost:8080"),
        ("[::1]:8080", "http://[::1]:8080"),
        ("https://dfs.example.com", "https://dfs.example.com"),
        ("HTTP://h:1/", "HTTP://h:1"),
    ],
)
def test_api_urls_accepted(given: str, url: str) -> None:
    assert profiles.looks_like_api_url(given)
    assert profiles.normalize_api_url(given) == url


@pytest.mark.parametrize("given", ["ftp://h:21", "file:///etc/passwd", "s3://bucket"])
def test_other_schemes_refused_by_name(given: str) -> None:
    with pytest.raises(InvalidRequest, match="unsupported URL scheme"):
        profiles.normalize_api_url(given)


@pytest.mark.parametrize("arg", [UUID, "backup/notes.txt", "photos/", "file.txt", "-", "h"])
def test_ids_names_and_paths_are_not_urls(arg: str) -> None:
    assert not profiles.looks_like_api_url(arg)


def test_first_positional_url_moves_to_the_option() -> None:
    takes_value = {"--concurrency", "--prefix"}
    moved = profiles.move_api_url(["--prefix", "a:1", "h:8080", "f"], takes_value)
    assert moved == ["--api-url", "h:8080", "--prefix", "a:1", "f"]
    # only the first positional argument: a later one is left to the command
    assert profiles.move_api_url(["f", "h:8080"], takes_value) == ["f", "h:8080"]
    assert profiles.move_api_url(["--json", UUID], takes_value) == ["--json", UUID]
    assert profiles.move_api_url(["--", "h:1"], set()) == ["--api-url", "h:1", "--"]


def _config(tmp_path: Path) -> Config:
    return Config(
        tmp_path / "c.toml",
        {
            "local": Profile("local", "http://127.0.0.1:8080", "tok-local"),
            "prod": Profile("prod", "https://dfs.example.com", "tok-prod"),
        },
        default="local",
        extra={"token": "tok-file"},
    )


def test_resolution_order(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    # the default profile, with its own token
    assert resolve(None, None, None, {}, cfg) == Target(
        "http://127.0.0.1:8080", "tok-local", "local"
    )
    # --profile beats DFS_API_URL, and its token beats DFS_TOKEN
    env = {"DFS_API_URL": "h:1", "DFS_TOKEN": "tok-env"}
    assert resolve(None, "prod", None, env, cfg) == Target(
        "https://dfs.example.com", "tok-prod", "prod"
    )
    # DFS_API_URL beats the default profile; DFS_TOKEN beats the file's token
    assert resolve(None, None, None, env, cfg) == Target("http://h:1", "tok-env", None)
    assert resolve(None, None, None, {"DFS_API_URL": "h:1"}, cfg).token == "tok-file"
    # an explicit URL of a known profile sends that profile's token, --token beats all
    assert resolve("https://dfs.example.com/", None, None, {}, cfg).token == "tok-prod"
    assert resolve("127.0.0.1:8080", "prod", "tok-flag", env, cfg).token == "tok-flag"


def test_resolution_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no API URL"):
        resolve(None, None, None, {}, Config(tmp_path / "none.toml"))
    with pytest.raises(InvalidRequest, match="no profile named 'nope'"):
        resolve(None, "nope", None, {}, _config(tmp_path))
    with pytest.raises(InvalidRequest, match="unsupported URL scheme 'ftp'"):
        resolve(None, None, None, {"DFS_API_URL": "ftp://h:1"}, _config(tmp_path))


def test_profiles_saved_0600_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "config.toml"
    path.parent.mkdir()
    path.write_text('token = "old \\"quoted\\""\n')  # the original format: a bare token
    cfg = profiles.load(path)
    profiles.set_profile(cfg, "local", "127.0.0.1:8080", "dfs_x")
    profiles.set_profile(cfg, "prod", "https://dfs.example.com", None)
    profiles.save(cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = profiles.load(path)
    assert again.default == "local"  # the first profile set
    assert again.profiles["local"] == Profile("local", "http://127.0.0.1:8080", "dfs_x")
    assert again.profiles["prod"].token is None
    assert again.extra == {"token": 'old "quoted"'}
    profiles.use_profile(again, "prod")
    profiles.remove_profile(again, "prod")
    assert again.default is None
    with pytest.raises(InvalidRequest):
        profiles.set_profile(again, "bad name", "h:1", None)
    with pytest.raises(InvalidRequest):
        profiles.use_profile(again, "missing")


def test_config_path_honours_dfs_config(tmp_path: Path) -> None:
    assert profiles.config_path({"DFS_CONFIG": str(tmp_path / "x.toml")}) == tmp_path / "x.toml"
    assert profiles.config_path({}).name == "config.toml"


def test_human_units_and_dates() -> None:
    assert cli_output.human_bytes(0) == "0 B"
    assert cli_output.human_bytes(1023) == "1023 B"
    assert cli_output.human_bytes(1536) == "1.5 KiB"
    assert cli_output.human_bytes(3 << 30) == "3.0 GiB"
    assert cli_output.human_time(None) == "-"
    assert cli_output.human_time(0.0) == "-"
    assert cli_output.human_time(1_700_000_000.0)[:3] == "202"
    assert cli_output.ago(95.0, now=100.0) == "5s ago"
    assert cli_output.ago(None) == "never"
    text = cli_output.nodes_text(
        {
            "live": 1,
            "replication_factor": 2,
            "nodes": [
                {
                    "node_id": "node1",
                    "url": "http://n1",
                    "status": "up",
                    "used_bytes": 1 << 20,
                    "capacity_bytes": 4 << 20,
                    "last_heartbeat": 98.0,
                }
            ],
        },
        now=100.0,
    )
    assert "1.0 MiB (25%)" in text
    assert "4.0 MiB" in text
    assert "2s ago" in text
