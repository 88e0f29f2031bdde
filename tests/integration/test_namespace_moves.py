"""A move never deletes what it did not copy: not a key moved onto itself (the copy was the
key's current version, and the move's delete took it: ``mv b/docs/p.txt b/docs/`` lost the
object in an unversioned bucket), and not a version written to the source while it moved."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfs.api.namespace_service import Namespace
from dfs.client import Client
from dfs.errors import Conflict, InvalidRequest
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("versioning", ["", "enabled"])
async def test_a_key_moved_onto_itself_is_refused_and_kept(
    inproc: InProcessCluster, tmp_path: Path, versioning: str
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "p.txt"
    src.write_bytes(b"precious")
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt", versioning=versioning or None)
        await a.upload_to([src], "bkt", "docs/p.txt")
        with pytest.raises(InvalidRequest, match="onto itself"):
            await a.copy("bkt/docs/p.txt", "bkt/docs/p.txt", move=True)
        out = tmp_path / "out.txt"
        await a.download_from("bkt", "docs/p.txt", out)
        assert out.read_bytes() == b"precious"
        versions = [e async for e in a.list_all("bkt", "docs/", versions=True)]
        assert len(versions) == 1  # no copy, no delete marker


async def test_a_version_written_while_its_key_moves_stays(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move copies the version it read; a new version written to the source before the
    move's delete is not deleted (Conflict: the move copied an older one)."""
    (alice,) = await tokens(inproc.api.url, "alice")
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_bytes(b"old")
    new.write_bytes(b"written meanwhile")
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt", versioning="enabled")
        await a.upload_to([old], "bkt", "k.txt")
        copy_one = Namespace._copy_one

        async def copy_then_a_write(self: Namespace, *args: object, **kwargs: object) -> object:
            made = await copy_one(self, *args, **kwargs)  # type: ignore[arg-type]
            async with Client(inproc.api.url, token=alice) as writer:
                await writer.upload_to([new], "bkt", "k.txt")
            return made

        monkeypatch.setattr(Namespace, "_copy_one", copy_then_a_write)
        with pytest.raises(Conflict):
            await a.copy("bkt/k.txt", "bkt/moved.txt", move=True)
        monkeypatch.undo()
        got = tmp_path / "got"
        await a.download_from("bkt", "k.txt", got)
        assert got.read_bytes() == b"written meanwhile"
        await a.download_from("bkt", "moved.txt", got)
        assert got.read_bytes() == b"old"
