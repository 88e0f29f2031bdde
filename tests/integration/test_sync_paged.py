"""``dfs-client sync`` of a file that goes page by page (``wants_pages``: more chunks than
one ``/init-upload`` may take at the profile's smallest chunk), in process: it uploads
through ``/paged-upload`` with ``"for_object": true`` (``/init-upload``'s chunk cap bound
it before), downloads byte-identical through its object, and a paged upload for an object
is never named by a lookup by content (``find_file_by_sha256``), before or after its link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dfs import protocol
from dfs.client import Client
from dfs.client.namespace import NamespaceMethods
from dfs.client.paged_upload import PagedUpload, StreamingUploadPipeline, wants_pages
from dfs.client.resume import UploadJournal
from dfs.errors import FileNotFound, Unavailable
from dfs.transport.api_client import ApiClient
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster, running_cluster
from tests.integration.test_namespace_api import tokens
from tests.integration.test_paged_upload import TINY, periodic

pytestmark = pytest.mark.integration

SIZE = 9 * protocol.MIB  # above SMALL_FILE (not batched), ~30,000 chunks of TINY


def _record_starts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The bodies of the ``/paged-upload`` starts from now on, as they are sent."""
    started: list[dict[str, Any]] = []
    real_start = ApiClient.paged_upload

    async def recorded(self: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
        started.append(dict(body))
        return await real_start(self, body)

    monkeypatch.setattr(ApiClient, "paged_upload", recorded)
    return started


async def test_sync_sends_a_file_that_wants_pages_page_by_page(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "big.bin"
    data = periodic(src, SIZE)
    assert wants_pages(SIZE, TINY)
    started = _record_starts(monkeypatch)
    (tok,) = await tokens(inproc.api.url, "erin")
    out = tmp_path / "out.bin"
    async with Client(inproc.api.url, token=tok) as c:
        await c.make_bucket("big")
        sent = await c.upload_to([src], "big", "a/big.bin", profile=TINY)
        [obj] = sent.done
        assert obj["size"] == SIZE
        assert [(b["name"], b.get("for_object")) for b in started] == [("a/big.bin", True)]
        got = await c.download_from("big", "a/big.bin", out)
    assert got.done == [{"key": "a/big.bin", "path": str(out)}]
    assert out.read_bytes() == data


async def test_sync_of_a_file_over_the_init_upload_chunk_cap(tmp_path: Path) -> None:
    """More than ``MAX_CHUNKS_PER_FILE`` chunks: ``/init-upload`` refused it (400 "chunks must
    be a list of at most 100000") when sync planned every file whole."""
    src = tmp_path / "huge.bin"
    data = periodic(src, 34 * protocol.MIB)
    out = tmp_path / "out.bin"
    async with (
        # ~110,000 chunks committed and planned in process: the node's heartbeats may wait
        running_cluster(
            tmp_path / "cluster", 1, 1, node_cfg={"heartbeat_timeout": 60.0}
        ) as cluster,
        Client(cluster.api.url, token=ADMIN_TOKEN, concurrency=4) as c,
    ):
        await c.make_bucket("huge")
        await c.upload_to([src], "huge", "h.bin", profile=TINY)
        [obj] = (await c.list_page("huge", ""))["objects"]
        rec = await cluster.api.coordinator.meta.get_file(obj["file_id"])
        assert rec.chunk_count > protocol.MAX_CHUNKS_PER_FILE
        await c.download_from("huge", "h.bin", out)
    assert out.read_bytes() == data


async def test_sync_never_resumes_a_plain_uploads_pending_file(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain paged upload of the same file and name, interrupted after its start, left a
    journal naming its pending file (created unmarked): the sync starts its own (marked),
    so the file its object links was never open to a lookup by content."""
    monkeypatch.setenv("DFS_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "big.bin"
    periodic(src, SIZE, seed=5)
    (tok,) = await tokens(inproc.api.url, "gus")
    async with Client(inproc.api.url, token=tok) as c:
        await c.make_bucket("res")
        plain = PagedUpload(StreamingUploadPipeline(c._connection(), TINY, None), src, "k", True)
        await plain._start()
        assert plain.journal is not None
        assert plain.journal.file_id == plain.file_id
        sent = await c.upload_to([src], "res", "k", profile=TINY)
        [obj] = sent.done
        assert obj["file_id"] != plain.file_id
        meta = inproc.api.coordinator.meta
        assert (await meta.get_file(plain.file_id, "gus")).state == "pending"


async def test_a_paged_upload_for_an_object_is_never_found_by_content(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """Committed marked at ``/paged-upload/finalize`` (created so at ``/paged-upload``): not
    named before its link nor after; a plain paged upload of the same bytes is, and
    survives the object's delete."""
    src = tmp_path / "big.bin"
    periodic(src, SIZE, seed=11)
    (tok,) = await tokens(inproc.api.url, "fay")
    meta = inproc.api.coordinator.meta
    async with Client(inproc.api.url, token=tok) as c:
        await c.make_bucket("objs")
        pipe = StreamingUploadPipeline(c._connection(), TINY, None, for_object=True)
        up = await pipe.upload_file(src, "obj.bin")
        for verified in (True, False):
            assert await meta.find_file_by_sha256("fay", up.sha256, verified=verified) is None
        await c.link("objs", "obj.bin", up.file_id)
        assert await meta.find_file_by_sha256("fay", up.sha256, verified=False) is None
        native = await c.upload(src, name="mine.bin", profile=TINY)
        found = await meta.find_file_by_sha256("fay", up.sha256, verified=False)
        assert found is not None
        assert found.file_id == native.file_id
        await c.remove("objs", "obj.bin")
        await meta.finish_namespace_jobs(inproc.api.coordinator.clock())  # type: ignore[attr-defined]
        with pytest.raises(FileNotFound):
            await meta.get_file(up.file_id, "fay")
        assert (await meta.get_file(native.file_id, "fay")).size == SIZE


async def test_a_resumed_paged_upload_whose_file_is_gone_starts_afresh(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run finalized a paged upload and died before its resume journal was finished and
    the file linked; the file was deleted since (a later run deleted it as a killed run's
    unlinked file, ``dfs.client.link_journal``). The next run resumes the journal's upload,
    finds it gone at its finalize, and starts afresh, in the same run (before: the run
    failed with FileNotFound and only the one after it succeeded)."""
    src = tmp_path / "big.bin"
    data = periodic(src, SIZE)
    (tok,) = await tokens(inproc.api.url, "gail")
    async with Client(inproc.api.url, token=tok) as c:
        await c.make_bucket("gone")
        with monkeypatch.context() as m:
            m.setattr(UploadJournal, "finish", lambda self: None)  # died before finishing it

            async def link_refused(self: Any, bucket: str, entries: Any) -> Any:
                raise Unavailable("the API went away before the link")

            m.setattr(NamespaceMethods, "link_many", link_refused)
            with pytest.raises(Unavailable):
                await c.upload_to([src], "gone", "big.bin", profile=TINY)
        # the failed link deleted the file its journal still names
        started = _record_starts(monkeypatch)
        sent = await c.upload_to([src], "gone", "big.bin", profile=TINY)
        assert [d["key"] for d in sent.done] == ["big.bin"]
        assert len(started) == 1  # afresh, once
        out = tmp_path / "out.bin"
        await c.download_from("gone", "big.bin", out)
    assert out.read_bytes() == data
