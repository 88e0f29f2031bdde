"""``Client.prune`` (``dfs-client prune``), in process, on a versioned bucket backed up into
three times: what it removes is exactly what no ``download --at`` of its time or later
reaches (the folder at that time and now come back the same after it), a delete marker goes
with the versions under it and never makes an older one current again, a dry run removes
nothing, a second prune finds nothing, another prefix is left alone, the bucket's usage
counts drop, and a grantee who may only read is refused before anything goes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dfs.client import Client
from dfs.client.prune import PruneReport
from dfs.errors import Conflict, Forbidden, InvalidRequest
from tests.integration.conftest import InProcessCluster
from tests.integration.test_download_at import read_tree, second_state
from tests.integration.test_namespace_api import tokens, tree

pytestmark = pytest.mark.integration


async def versions(c: Client, bucket: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Each key's versions and markers, newest first."""
    out: dict[str, list[dict[str, Any]]] = {}
    async for o in c.list_all(bucket, prefix, delimiter="", versions=True):
        out.setdefault(o["key"], []).append(o)
    return out


async def prune(
    c: Client, bucket: str, path: str, before: float, dry_run: bool = False
) -> tuple[PruneReport, list[dict[str, Any]]]:
    """``Client.prune`` and the entries it removed, in order."""
    removed: list[dict[str, Any]] = []
    report = await c.prune(bucket, path, before, dry_run=dry_run, on_removed=removed.append)
    return report, removed


async def history(c: Client, src: Path) -> tuple[float, float]:
    """Three backups of ``src`` into snaps/home/ with deletes between; the times after the
    first and after the second (with its delete markers)."""
    await c.make_bucket("snaps", versioning="enabled")
    tree(src)
    await c.upload_to([src], "snaps", "home/")
    t1 = time.time()
    second_state(src)  # a.jpg rewritten, trip/new.txt added
    await c.upload_to([src], "snaps", "home/")
    await c.remove("snaps", "home/trip/d.txt")  # a marker, and a version after it below
    await c.remove("snaps", "home/b.png")  # a marker that stays the key's latest
    (src / "trip" / "d.txt").unlink()
    (src / "b.png").unlink()
    t2 = time.time()
    (src / "trip" / "d.txt").write_bytes(b"d.txt again, other bytes")
    await c.upload_to([src], "snaps", "home/")
    return t1, t2


async def test_prune_keeps_what_every_later_time_needs(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    async with Client(url, token=alice) as a:
        t1, t2 = await history(a, tmp_path / "src")
        await a.link("snaps", "other/x", "", unless_current=False)  # another prefix,
        await a.link("snaps", "other/x", "", unless_current=False)  # two versions
        await a.download_from("snaps", "home/", tmp_path / "at2", at=t2)
        await a.download_from("snaps", "home/", tmp_path / "now")
        listed = await versions(a, "snaps", "home/")
        usage = await a.usage("snaps")

        dry, would = await prune(a, "snaps", "home/", t2, dry_run=True)
        assert await versions(a, "snaps", "home/") == listed  # nothing removed
        gone = {(o["key"], o["is_delete_marker"]) for o in would}
        assert sorted(gone) == [
            ("home/a.jpg", False),  # its first version: the second replaced it before t2
            ("home/b.png", False),  # deleted before t2, nothing since
            ("home/b.png", True),
            ("home/trip/d.txt", False),
            ("home/trip/d.txt", True),  # current at t2, with nothing older left
        ]
        assert dry.kept == sum(map(len, listed.values())) - 5

        done, removed = await prune(a, "snaps", "home/", t2)
        assert sorted((o["key"], o["version_id"]) for o in removed) == sorted(
            (o["key"], o["version_id"]) for o in would
        )
        assert (done.versions, done.markers, done.kept) == (3, 2, dry.kept)
        assert done.bytes == sum(o["size"] for o in would if not o["is_delete_marker"])
        after = await versions(a, "snaps", "home/")
        assert "home/b.png" not in after  # gone for good, not back from under its marker
        assert [o["created_at"] > t2 for o in after["home/trip/d.txt"]] == [True]
        assert len(after["home/a.jpg"]) == 1
        assert all(not o["is_delete_marker"] for vs in after.values() for o in vs)
        assert len((await versions(a, "snaps", "other/"))["other/x"]) == 2

        # every time from t2 on comes back as it did before the prune
        await a.download_from("snaps", "home/", tmp_path / "at2-after", at=t2)
        assert read_tree(tmp_path / "at2-after") == read_tree(tmp_path / "at2")
        await a.download_from("snaps", "home/", tmp_path / "now-after")
        assert read_tree(tmp_path / "now-after") == read_tree(tmp_path / "now")
        # at t1 only what was still current at t2 is left: not a.jpg's or d.txt's first
        # versions (replaced before t2), and nothing made after t1
        await a.download_from("snaps", "home/", tmp_path / "at1-after", at=t1)
        at2 = read_tree(tmp_path / "at2")
        assert read_tree(tmp_path / "at1-after") == {
            k: at2[k] for k in ("trip/c.jpg", "trip/deep/e.jpg")
        }

        counts = await a.usage("snaps")
        assert counts["versions"] == usage["versions"] - 3
        assert counts["delete_markers"] == usage["delete_markers"] - 2
        assert counts["logical_bytes"] == usage["logical_bytes"] - done.bytes

        again, none = await prune(a, "snaps", "home/", t2)
        assert (none, again.kept) == ([], done.kept)
        # a time after everything: only the current objects stay
        _, latest = await prune(a, "snaps", "", time.time() + 1)
        assert [o["key"] for o in latest] == ["other/x"]
        assert all(len(vs) == 1 for vs in (await versions(a, "snaps", "")).values())


async def test_a_reader_cannot_prune(inproc: InProcessCluster, tmp_path: Path) -> None:
    url = inproc.api.url
    alice, bob = await tokens(url, "alice", "bob")
    async with Client(url, token=alice) as a, Client(url, token=bob) as b:
        _, t2 = await history(a, tmp_path / "src")
        await a.set_bucket("snaps", grants={"bob": "read"})
        listed = await versions(a, "snaps", "")
        assert (await prune(b, "snaps", "", t2, dry_run=True))[1]  # a reader may look
        with pytest.raises(Forbidden):
            await b.prune("snaps", "", t2)
        assert await versions(a, "snaps", "") == listed


async def test_suspended_versioning_keeps_the_null_version(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """A key's ``null`` entry is never removed by its id (a write meanwhile would be what the
    id names); the numbered versions under it go as any others; a key named without its
    slash is that key and its folder, not the keys beside it."""
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    src = tmp_path / "f"
    async with Client(url, token=alice) as a:
        await a.make_bucket("susp", versioning="enabled")
        for i in range(2):
            src.write_bytes(b"numbered %d" % i)
            await a.upload_to([src], "susp", "k")
        await a.upload_to([src], "susp", "k.bak")
        await a.set_bucket("susp", versioning="suspended")
        src.write_bytes(b"the null version")
        await a.upload_to([src], "susp", "k")
        numbered = [o["version_id"] for o in (await versions(a, "susp", "k"))["k"][1:]]
        _, removed = await prune(a, "susp", "k", time.time() + 1)
        assert [o["version_id"] for o in removed] == numbered  # not k.bak's, not the null
        assert [o["version_id"] for o in (await versions(a, "susp", "k"))["k"]] == ["null"]
        assert len((await versions(a, "susp", "k.bak"))["k.bak"]) == 1

        # a newer numbered version on top: the null one, replaced at the time, still stays
        await a.set_bucket("susp", versioning="enabled")
        src.write_bytes(b"numbered again")
        await a.upload_to([src], "susp", "k")
        report, removed = await prune(a, "susp", "k", time.time() + 1)
        assert (removed, report.kept) == ([], 2)
        assert (await a.object_info("susp", "k"))["size"] == len(b"numbered again")


async def test_a_removal_on_condition_of_the_latest(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """``DELETE /objects/...?version=&if_latest=`` (what prune sends for a marker): refused
    with 409 when the key's latest entry is another, 400 without a version."""
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    async with Client(url, token=alice) as a:
        await a.make_bucket("cond", versioning="enabled")
        await a.link("cond", "k", "", unless_current=False)
        marker = (await a.remove("cond", "k"))["version"]
        with pytest.raises(InvalidRequest, match="if_latest goes with a version"):
            await a.remove("cond", "k", if_latest=marker["version_id"])
        with pytest.raises(InvalidRequest, match="not null"):
            await a.remove("cond", "k", version=marker["version_id"], if_latest="null")
        await a.link("cond", "k", "", unless_current=False)  # written since
        with pytest.raises(Conflict):
            await a.remove(
                "cond", "k", version=marker["version_id"], if_latest=marker["version_id"]
            )
        assert len((await versions(a, "cond", "k"))["k"]) == 3
        latest = (await versions(a, "cond", "k"))["k"][0]["version_id"]
        done = await a.remove("cond", "k", version=marker["version_id"], if_latest=latest)
        assert done["version"]["version_id"] == marker["version_id"]


async def test_many_versions_removed_in_one_request(inproc: InProcessCluster) -> None:
    """``POST /objects-remove`` (a prune's batch): each entry its own answer, in order: the
    version removed, null for one not there, the error of a bad or refused entry."""
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    async with Client(url, token=alice) as a:
        await a.make_bucket("many", versioning="enabled")
        ids = []
        for i in range(3):
            await a.link("many", "k", "", metadata={"n": str(i)}, unless_current=False)
            ids.append((await versions(a, "many", "k"))["k"][0]["version_id"])
        latest = ids[-1]
        answers = await a.remove_versions(
            "many",
            [
                {"key": "k", "version": ids[0]},
                {"key": "k", "version": ids[0]},  # the same again: not there any more
                {"key": "k", "version": ""},
                {"key": "k", "version": ids[1], "if_latest": "null"},
                {"key": "k", "version": ids[1], "if_latest": ids[0]},  # not the latest
                {"key": "k", "version": ids[1], "if_latest": latest},
            ],
        )
        assert answers[0]["version"]["version_id"] == ids[0]
        assert answers[1] == {"deleted": "k", "version": None}
        assert [x["error"]["code"] for x in answers[2:5]] == [
            "invalid_request",
            "invalid_request",
            "conflict",
        ]
        assert answers[5]["version"]["version_id"] == ids[1]
        assert [o["version_id"] for o in (await versions(a, "many", "k"))["k"]] == [latest]
