"""A folder upload deletes what a killed one left unlinked, and nothing else (in process,
SQLite): the journal of a run that is gone (``dfs.client.link_journal``) names a complete
file linked by nothing (deleted), a file a version links by now (kept, its object intact),
a pending upload (kept for its resume), an id already gone and a line that is no id
(nothing to do), and a file a running upload took over and names too, before or after
the dead run's journal was taken (kept). A cache directory that cannot hold a journal
does not stop an upload."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import aiohttp
import pytest

from dfs.client import Client, namespace_sync
from dfs.client.link_journal import Leftovers, LinkJournal, journal_folder
from dfs.errors import NotFound
from tests.integration.conftest import InProcessCluster
from tests.integration.test_grantee_files import _auth, _finalize
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


async def test_the_next_upload_deletes_only_what_a_killed_one_left_unlinked(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
        late, status, _ = await _finalize(c, s, url, b"resumed by one started meanwhile")
        assert status == 200
        folder = journal_folder(url, alice)
        killed = LinkJournal.create(folder)
        gone = "01a24621-0000-7000-8000-000000000000"
        killed.up([orphan, linked, pending, gone, "not-an-id", resumed, late])
        os.close(killed._fd)  # as a killed run leaves it: written, unlocked, not removed
        assert killed.path.exists()
        running = LinkJournal.create(folder)  # locked: its run goes on
        running.up([resumed])  # it took the killed run's upload over, and links it next
        starting: list[LinkJournal] = []
        real_take = namespace_sync.take_leftovers

        def take_then_a_run_starts(where: Path) -> Leftovers:
            left = real_take(where)
            starting.append(LinkJournal.create(where))  # a run started after the take
            starting[0].up([late])  # names a file the take found open
            return left

        monkeypatch.setattr(namespace_sync, "take_leftovers", take_then_a_run_starts)

        src = tmp_path / "src"
        src.mkdir()
        (src / "new.txt").write_bytes(b"the next run's own file")
        await c.upload_to([src], "left", "k/")

        with pytest.raises(NotFound):
            await c.api.file(orphan)
        assert (await c.api.file(resumed))["state"] == "complete"  # the running one's
        assert (await c.api.file(late))["state"] == "complete"  # the one started meanwhile's
        running.close()
        starting[0].close()
        assert (await c.api.file(linked))["state"] == "complete"
        resumed = await c.api.resume_upload(pending, {})  # still pending: resumable
        assert resumed["file_id"] == pending
        for key, want in (("k/linked", b"linked just before the kill"), ("k/new.txt", None)):
            async with s.get(f"{url}/objects/left/{key}", headers=_auth(alice)) as r:
                assert r.status == 200
                assert want is None or await r.read() == want
        assert not killed.path.exists()
        # left: the running journals, whose runs ended with a file they did not link
        assert sorted(folder.glob("*.log")) == sorted([running.path, starting[0].path])


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
