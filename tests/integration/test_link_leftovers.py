"""A folder upload deletes what a killed one left unlinked, and nothing else (in process,
SQLite): the journal of a run that is gone (``dfs.client.link_journal``) names a complete
file linked by nothing (deleted), a file a version links by now (kept, its object intact),
a pending upload (kept for its resume), an id already gone and a line that is no id
(nothing to do), and a file a running upload took over and names too (kept). A cache
directory that cannot hold a journal does not stop an upload."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import aiohttp
import pytest

from dfs.client import Client
from dfs.client.link_journal import LinkJournal, journal_folder
from dfs.errors import NotFound
from tests.integration.conftest import InProcessCluster
from tests.integration.test_grantee_files import _auth, _finalize
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


async def test_the_next_upload_deletes_only_what_a_killed_one_left_unlinked(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    async with Client(url, token=alice) as c, aiohttp.ClientSession() as s:
        await c.make_bucket("left")
        orphan, status, _ = await _finalize(c, s, url, b"uploaded, never linked")
        assert status == 200
        linked, status, _ = await _finalize(c, s, url, b"linked just before the kill")
        assert status == 200
        await c.link("left", "k/linked", linked)
        data = b"still pending"
        digest = hashlib.sha256(data).hexdigest()
        pending = (
            await c.api.init_upload(
                name="p.bin",
                size=len(data),
                sha256=digest,
                chunker="fixed:65536",
                chunks=[{"sha256": digest, "size": len(data)}],
            )
        )["file_id"]
        resumed, status, _ = await _finalize(c, s, url, b"resumed by a running upload")
        assert status == 200
        killed = LinkJournal.create(journal_folder(url, alice))
        gone = "01a24621-0000-7000-8000-000000000000"
        killed.up([orphan, linked, pending, gone, "not-an-id", resumed])
        os.close(killed._fd)  # as a killed run leaves it: written, unlocked, not removed
        assert killed.path.exists()
        running = LinkJournal.create(journal_folder(url, alice))  # locked: its run goes on
        running.up([resumed])  # it took the killed run's upload over, and links it next

        src = tmp_path / "src"
        src.mkdir()
        (src / "new.txt").write_bytes(b"the next run's own file")
        await c.upload_to([src], "left", "k/")

        with pytest.raises(NotFound):
            await c.api.file(orphan)
        assert (await c.api.file(resumed))["state"] == "complete"  # the running one's
        running.close()
        assert (await c.api.file(linked))["state"] == "complete"
        resumed = await c.api.resume_upload(pending, {})  # still pending: resumable
        assert resumed["file_id"] == pending
        for key, want in (("k/linked", b"linked just before the kill"), ("k/new.txt", None)):
            async with s.get(f"{url}/objects/left/{key}", headers=_auth(alice)) as r:
                assert r.status == 200
                assert want is None or await r.read() == want
        assert not killed.path.exists()
        # left: the running journal, whose run ended with a file it did not link
        assert list(journal_folder(url, alice).glob("*.log")) == [running.path]


async def test_a_cache_that_cannot_hold_a_journal_does_not_stop_an_upload(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    blocked = tmp_path / "not-a-folder"
    blocked.write_bytes(b"")
    monkeypatch.setenv("DFS_CACHE_DIR", str(blocked))
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"uploaded all the same")
    async with Client(url, token=alice) as c, aiohttp.ClientSession() as s:
        await c.make_bucket("nocache")
        report = await c.upload_to([src], "nocache", "k/")
        assert [d["key"] for d in report.done] == ["k/a.txt"]
        async with s.get(f"{url}/objects/nocache/k/a.txt", headers=_auth(alice)) as r:
            assert (r.status, await r.read()) == (200, b"uploaded all the same")
