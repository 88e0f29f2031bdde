"""A node's disk identity (``dfs.node.disk_identity``) and the registry column that keeps it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dfs.errors import ConfigError
from dfs.meta.base import NodeRecord
from dfs.meta.sqlite import SqliteMetadataStore
from dfs.node.disk_identity import (
    BOOT_NAME,
    disk_id_path,
    ensure_disk_id,
    next_boot,
    read_boot,
    read_disk_id,
)
from dfs.node.main import default_node_id
from tests.fsync_trace import record_fsyncs


def test_first_start_writes_an_identity_that_stays(tmp_path: Path) -> None:
    assert read_disk_id(tmp_path) == ""
    first = ensure_disk_id(tmp_path)
    assert first.startswith("disk-")
    assert len(first) > 20
    assert ensure_disk_id(tmp_path) == first == read_disk_id(tmp_path)
    assert [p.name for p in disk_id_path(tmp_path).parent.iterdir()] == [".disk-id"]


def test_a_wiped_chunk_folder_gets_another_identity(tmp_path: Path) -> None:
    first = ensure_disk_id(tmp_path)
    disk_id_path(tmp_path).unlink()
    disk_id_path(tmp_path).parent.rmdir()
    second = ensure_disk_id(tmp_path)
    assert second not in ("", first)


def test_a_torn_identity_counts_as_none(tmp_path: Path) -> None:
    disk_id_path(tmp_path).parent.mkdir(parents=True)
    disk_id_path(tmp_path).write_bytes(b"disk-\xff\x00")
    assert read_disk_id(tmp_path) == ""
    assert ensure_disk_id(tmp_path) != ""


def test_boot_numbers_grow_at_every_start_and_are_kept_on_disk(tmp_path: Path) -> None:
    assert read_boot(tmp_path) == 0
    first = next_boot(tmp_path, now=1_700_000_000.0)
    assert first == 1_700_000_000_000  # at least the start's time in milliseconds
    assert read_boot(tmp_path) == first
    # a clock that went back (or two starts in one millisecond): still one more than the last
    assert next_boot(tmp_path, now=1_600_000_000.0) == first + 1
    assert next_boot(tmp_path, now=1_600_000_000.0) == first + 2
    later = next_boot(tmp_path, now=1_800_000_000.0)
    assert later == 1_800_000_000_000
    assert (tmp_path / BOOT_NAME).read_text() == f"{later}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [BOOT_NAME]  # no temp file left


def test_a_wiped_or_torn_boot_file_starts_from_the_clock(tmp_path: Path) -> None:
    next_boot(tmp_path, now=1_700_000_000.0)
    (tmp_path / BOOT_NAME).write_bytes(b"12\xff")
    assert read_boot(tmp_path) == 0
    assert next_boot(tmp_path, now=1_700_000_005.0) == 1_700_000_005_000
    (tmp_path / BOOT_NAME).unlink()
    assert next_boot(tmp_path, now=1_700_000_006.0) == 1_700_000_006_000


async def test_sqlite_store_made_before_disk_identities_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE nodes (node_id TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL,"
        " zone TEXT NOT NULL, capacity_bytes INTEGER NOT NULL, used_bytes INTEGER NOT NULL,"
        " status TEXT NOT NULL, last_heartbeat REAL NOT NULL, expires_at REAL NOT NULL)"
        " WITHOUT ROWID"
    )
    conn.execute("INSERT INTO nodes VALUES ('n1', 'h', 1, '', 0, 0, 'up', 1.0, 2.0)")
    conn.commit()
    conn.close()
    meta = await SqliteMetadataStore.open(f"sqlite:///{db}")
    try:
        assert [n.disk_id for n in await meta.list_nodes()] == [""]
        await meta.upsert_node(NodeRecord("n1", "h", 1, expires_at=3.0, disk_id="disk-x"))
        assert [n.disk_id for n in await meta.list_nodes()] == ["disk-x"]
        # and before entries recorded the node call that wrote them: any call's write wins
        assert await meta.upsert_node(NodeRecord("n1", "h", 1, expires_at=4.0, boot=5, seq=1))
        assert not await meta.upsert_node(NodeRecord("n1", "h", 1, expires_at=5.0, boot=4, seq=9))
        assert [(n.expires_at, n.boot, n.seq) for n in await meta.list_nodes()] == [(4.0, 5, 1)]
    finally:
        await meta.close()


async def test_sqlite_node_sequences_of_before_boot_numbers_are_dropped(tmp_path: Path) -> None:
    """The table of per-boot nonces goes on open: the first numbered heartbeat is accepted."""
    db = tmp_path / "meta.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE node_sequences (node_id TEXT PRIMARY KEY, boot TEXT, seq INTEGER)")
    conn.execute("INSERT INTO node_sequences VALUES ('n1', ?, 99)", ("f" * 32,))
    conn.commit()
    conn.close()
    meta = await SqliteMetadataStore.open(f"sqlite://{db}")
    try:
        assert await meta.advance_node_sequence("n1", 1_700_000_000_000, 1)
        assert not await meta.advance_node_sequence("n1", 1_699_999_999_999, 100)
    finally:
        await meta.close()
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "node_sequences" not in tables


async def test_sqlite_nodes_with_a_column_of_a_later_version_still_read(tmp_path: Path) -> None:
    """A later version may add a column to ``nodes``: this one reads the columns it knows."""
    db = tmp_path / "meta.db"
    meta = await SqliteMetadataStore.open(f"sqlite://{db}")
    await meta.upsert_node(NodeRecord("n1", "h", 1, expires_at=3.0, boot=2, seq=5))
    await meta.close()
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE nodes ADD COLUMN rack TEXT NOT NULL DEFAULT 'r1'")
    conn.commit()
    conn.close()
    meta = await SqliteMetadataStore.open(f"sqlite://{db}")
    try:
        [n] = await meta.list_nodes()
        assert (n.node_id, n.expires_at, n.boot, n.seq) == ("n1", 3.0, 2, 5)
    finally:
        await meta.close()


def test_a_generated_node_id_is_durable_and_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node id file is fsync'd and so is its directory entry (it was renamed into place
    unsynced: a crash could lose the id, and the node came back as another node, every copy it
    held counted lost)."""
    synced = record_fsyncs(monkeypatch)
    node_id = default_node_id(tmp_path / "data")
    data = str(tmp_path / "data")
    assert len(synced) == 3
    assert synced[0] == str(tmp_path)  # the new data folder's name
    assert synced[1].startswith(f"{data}/node_id.")  # the id's bytes, before the rename
    assert synced[2] == data  # then its name
    assert default_node_id(tmp_path / "data") == node_id
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["node_id"]


@pytest.mark.parametrize("text", ["", "\n", "not/a node id", "\xff\xfe"])
def test_a_torn_node_id_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "node_id").write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match="node_id"):
        default_node_id(tmp_path)


def test_a_chunk_folder_made_again_by_the_disk_identity_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk folder wiped while the node runs is made again by the next heartbeat's disk
    identity; its entry in the data folder is fsync'd before the id is written in it (it was
    a plain mkdir, and the chunks repaired into it later never fsync'd that entry)."""
    synced = record_fsyncs(monkeypatch)
    ensure_disk_id(tmp_path)
    assert synced[0] == str(tmp_path)  # holds the new chunks/ folder
    assert synced[1].startswith(f"{tmp_path}/chunks/.disk-id.")
    assert synced[2:] == [f"{tmp_path}/chunks"]
