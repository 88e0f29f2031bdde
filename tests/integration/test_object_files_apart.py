"""An object's file is never a file another holder keeps (the release of the object's last
version deletes it), on the paths an e2e test reaches only with a changed default chunker
or a lost race: a multipart Complete re-chunked with today's profile, and an object made by
content whose found file goes before its clone is made."""

from __future__ import annotations

import random

import pytest

from dfs import auth
from dfs.api.bodies import Principal
from dfs.api.ingest import ingest
from dfs.api.multipart import Multipart
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_service import Namespace, namespace_store
from dfs.chunking import ChunkerProfile
from dfs.errors import FileNotFound
from dfs.meta.base import HIDDEN_NAME_PREFIX
from tests.integration.conftest import InProcessCluster
from tests.integration.test_ingest_small import _reader

pytestmark = pytest.mark.integration
LIMIT = 1 << 24


async def _alice(inproc: InProcessCluster) -> tuple[Namespace, Principal]:
    coord = inproc.api.coordinator
    ns = Namespace(namespace_store(coord.meta), coord)
    await coord.meta.create_tenant("alice", coord.clock())
    alice = Principal("alice", auth.ROLE_USER)
    await ns.create_bucket(alice, "bkt", None, None)
    return ns, alice


async def test_a_rechunked_multipart_object_gets_a_file_of_its_own(
    inproc: InProcessCluster,
) -> None:
    """Parts chunked with another profile are re-chunked at Complete as a PutObject: into a
    new file, never the tenant's native file of the same bytes (its delete deleted it)."""
    ns, alice = await _alice(inproc)
    coord = inproc.api.coordinator
    data = random.Random(1).randbytes(300_000)
    profile = ChunkerProfile.default()
    native = await ingest(coord, "alice", "mine.bin", _reader(data), profile, LIMIT)
    part_name = HIDDEN_NAME_PREFIX + "part"
    part = await ingest(coord, "alice", part_name, _reader(data), profile, LIMIT, reuse=False)
    part_rec = await coord.meta.get_file(str(part.body["file_id"]), "alice")
    made = await Multipart(coord)._rechunk_all("alice", "obj", [part_rec])
    assert made.created
    assert made.body["file_id"] != native.body["file_id"]
    await ns.link(alice, "bkt", "obj", str(made.body["file_id"]), ObjectFields())
    await ns.delete(alice, "bkt", "obj", None)
    assert (await coord.meta.get_file(str(native.body["file_id"]), "alice")).size == len(data)


async def test_an_object_by_content_whose_file_went_meanwhile_is_not_made(
    inproc: InProcessCluster,
) -> None:
    """``link_copy`` of a file deleted since it was found: FileNotFound (the route answers
    ``content_not_stored`` and the console uploads), and no object is made."""
    ns, alice = await _alice(inproc)
    coord = inproc.api.coordinator
    data = random.Random(2).randbytes(100_000)
    profile = ChunkerProfile.default()
    found = await ingest(coord, "alice", "gone.bin", _reader(data), profile, LIMIT)
    rec = await coord.meta.get_file(str(found.body["file_id"]), "alice")
    await coord.delete_file(rec.file_id, "alice")
    with pytest.raises(FileNotFound):
        await ns.link_copy(alice, "bkt", "k", rec, ObjectFields())
    assert (await ns.store.list_objects("bkt")).objects == []


async def _native_survives_the_object(
    inproc: InProcessCluster, ns: Namespace, alice: Principal, data: bytes, object_id: str
) -> None:
    """The window between the object file's commit and its link, opened on purpose: a native
    upload of the same bytes then gets a file of its own (not the object's), and the
    object's delete leaves it whole."""
    coord = inproc.api.coordinator
    profile = ChunkerProfile.default()
    native = await ingest(coord, "alice", "mine.bin", _reader(data), profile, LIMIT)
    assert native.created  # not answered (409) with the object's file, not linked yet
    native_id = str(native.body["file_id"])
    assert native_id != object_id
    await ns.link(alice, "bkt", "obj", object_id, ObjectFields())
    await ns.delete(alice, "bkt", "obj", None)
    with pytest.raises(FileNotFound):
        await coord.meta.get_file(object_id, "alice")  # released with its last version
    assert (await coord.meta.get_file(native_id, "alice")).size == len(data)


async def test_an_objects_file_sent_here_is_no_dedup_answer_before_its_link(
    inproc: InProcessCluster,
) -> None:
    """An object's body ingested whole (every chunk sent here: ``create_and_commit_files``,
    as ``POST /upload?bucket=&key=`` and a PutObject's fallback do) is committed marked."""
    ns, alice = await _alice(inproc)
    coord = inproc.api.coordinator
    data = random.Random(3).randbytes(200_000)
    profile = ChunkerProfile.default()
    obj = await ingest(coord, "alice", "obj", _reader(data), profile, LIMIT, reuse=False)
    await _native_survives_the_object(inproc, ns, alice, data, str(obj.body["file_id"]))


async def test_an_objects_file_finalized_is_no_dedup_answer_before_its_link(
    inproc: InProcessCluster,
) -> None:
    """An object's body whose chunks the tenant held already (no receipt: the general
    path, ``finalize_upload``, as ``/finalize-upload`` with a key) is committed marked."""
    ns, alice = await _alice(inproc)
    coord = inproc.api.coordinator
    data = random.Random(4).randbytes(200_000)
    profile = ChunkerProfile.default()
    first = await ingest(coord, "alice", "first.bin", _reader(data), profile, LIMIT)
    obj = await ingest(coord, "alice", "obj", _reader(data), profile, LIMIT, reuse=False)
    assert obj.created
    assert obj.record is None  # finalized, not recorded in one write with its copies
    await coord.delete_file(str(first.body["file_id"]), "alice")
    await _native_survives_the_object(inproc, ns, alice, data, str(obj.body["file_id"]))
