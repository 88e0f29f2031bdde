"""``Client.download_from(..., at=T)`` (``dfs-client download --at``), in process: a folder of
a versioned bucket comes back as it was at a time (files changed since as they were, a key
deleted since back, a key added since left out), into an empty folder or over the newer
files; one key alone; a folder named without its slash; a grantee's copy streamed through
the API; a time before the folder, and a version given with a time, refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dfs.client import Client
from dfs.errors import InvalidRequest, KeyNotFound
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens, tree

pytestmark = pytest.mark.integration


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def second_state(src: Path) -> None:
    """The tree changed: one file rewritten (another size), one added."""
    (src / "a.jpg").write_bytes(b"a.jpg, rewritten")
    (src / "trip" / "new.txt").write_bytes(b"added after the first backup")


async def test_a_folder_comes_back_as_it_was(inproc: InProcessCluster, tmp_path: Path) -> None:
    url = inproc.api.url
    alice, bob = await tokens(url, "alice", "bob")
    src = tmp_path / "src"
    first = tree(src)
    async with Client(url, token=alice) as a, Client(url, token=bob) as b:
        await a.make_bucket("snaps", versioning="enabled")
        before = time.time()
        await a.upload_to([src], "snaps", "home/")
        t1 = time.time()  # every version of the first backup was made before this
        second_state(src)
        (src / "trip" / "d.txt").unlink()
        up = await a.upload_to([src], "snaps", "home/")
        assert sorted(d["key"] for d in up.done) == ["home/a.jpg", "home/trip/new.txt"]
        await a.remove("snaps", "home/trip/d.txt")  # a delete marker on top
        t2 = time.time()
        (src / "trip" / "d.txt").write_bytes(b"d.txt again, other bytes")
        await a.upload_to([src], "snaps", "home/")  # a version after the marker
        now = read_tree(src)

        at1 = tmp_path / "at1"
        await a.download_from("snaps", "home/", at1, at=t1)
        assert read_tree(at1) == first
        at2 = tmp_path / "at2"
        await a.download_from("snaps", "home/", at2, at=t2)
        second = {**first, "a.jpg": now["a.jpg"], "trip/new.txt": now["trip/new.txt"]}
        del second["trip/d.txt"]  # its version at t2 is the delete marker
        assert read_tree(at2) == second
        latest = tmp_path / "latest"
        await a.download_from("snaps", "home/", latest)
        assert read_tree(latest) == now

        # over the newer files: the older bytes replace them; a file added since stays
        back = await a.download_from("snaps", "home", latest, at=t1)  # the folder, no slash
        assert sorted(d["key"] for d in back.done) == ["home/a.jpg", "home/trip/d.txt"]
        assert read_tree(latest) == {**first, "trip/new.txt": now["trip/new.txt"]}

        # one key, into a file and into a folder (a longer key beside it is not it)
        await a.link("snaps", "home/a.jpg.old", "", unless_current=False)
        await a.download_from("snaps", "home/a.jpg", tmp_path / "a-then.jpg", at=t1)
        assert (tmp_path / "a-then.jpg").read_bytes() == first["a.jpg"]
        (tmp_path / "d").mkdir()
        await a.download_from("snaps", "home/trip/d.txt", tmp_path / "d", at=t2 + 3600)
        assert (tmp_path / "d" / "d.txt").read_bytes() == now["trip/d.txt"]

        # a grantee reads the old versions through the API
        await a.set_bucket("snaps", grants={"bob": "read"})
        shared = tmp_path / "shared"
        await b.download_from("snaps", "home/", shared, at=t1)
        assert read_tree(shared) == first

        with pytest.raises(KeyNotFound, match="no key or folder snaps/home/ at"):
            await a.download_from("snaps", "home/", tmp_path / "none", at=before - 60)
        assert not (tmp_path / "none").exists()
        with pytest.raises(KeyNotFound):  # the marker is what d.txt was at t2
            await a.download_from("snaps", "home/trip/d.txt", tmp_path / "gone.txt", at=t2)
        with pytest.raises(InvalidRequest, match="not both"):
            await a.download_from("snaps", "home/a.jpg", tmp_path / "x", version="v", at=t1)


async def test_versions_at_picks_each_keys_version_then(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """``versions_at`` over many versions of one key (the listing gives them newest first)."""
    (token,) = await tokens(inproc.api.url, "carol")
    async with Client(inproc.api.url, token=token) as c:
        await c.make_bucket("many", versioning="enabled")
        times = []
        for i in range(5):
            await c.link("many", "k", "", metadata={"n": str(i)}, unless_current=False)
            times.append(time.time())
        for i, t in enumerate(times):
            picked = await c.versions_at("many", "", t)
            assert picked["k"]["metadata"]["n"] == str(i)
        assert await c.versions_at("many", "", times[0] - 60) == {}
