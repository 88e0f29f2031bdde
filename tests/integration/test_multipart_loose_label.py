"""A multipart part cut with a loose first chunk is recorded under a chunker of its own, so a
gateway that would keep that chunk as a single stream's (one of a version before the loose
first chunks) never splices it; today's Complete takes parts of either cut and stores the
chunks a single stream gives."""

from __future__ import annotations

import random

import pytest

from dfs.api.ingest import ingest
from dfs.api.multipart import Multipart
from dfs.chunking import ChunkerProfile
from dfs.errors import InvalidRequest
from dfs.meta.base import HIDDEN_NAME_PREFIX
from dfs.meta.multipart import UploadPart
from tests.integration.conftest import InProcessCluster
from tests.integration.test_ingest_small import _reader

pytestmark = pytest.mark.integration
LIMIT = 1 << 26
MIB = 1 << 20


async def test_parts_after_the_first_record_the_loose_head_chunker(
    inproc: InProcessCluster,
) -> None:
    coord = inproc.api.coordinator
    await coord.meta.create_tenant("alice", coord.clock())
    mp = Multipart(coord)
    upload = await mp.create("alice", "bkt", "obj")
    data = random.Random(7).randbytes(5 * MIB)
    profile = ChunkerProfile.default()
    first, _, _ = await mp.ingest_part(upload, 1, _reader(data))
    second, _, _ = await mp.ingest_part(upload, 2, _reader(data))
    tiny, _, _ = await mp.ingest_part(upload, 3, _reader(data[:1000]))
    assert (await coord.meta.get_file(first, "alice")).chunker == str(profile)
    label = (await coord.meta.get_file(second, "alice")).chunker
    assert label == profile.loose_head_label() != str(profile)
    # one chunk whatever the rule: the plain profile, which any gateway may splice
    assert (await coord.meta.get_file(tiny, "alice")).chunker == str(profile)
    with pytest.raises(InvalidRequest):  # no reader takes it for a profile to chunk with
        ChunkerProfile.parse(label)


@pytest.mark.parametrize("loose", [True, False])
async def test_complete_splices_parts_of_either_cut_as_one_stream(
    inproc: InProcessCluster, loose: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``loose=False``: part 2 cut as a gateway before the loose first chunks cut it (its
    first chunk at least the minimum, the plain profile recorded). Either way the parts are
    spliced, not every byte chunked again."""

    async def no_rechunk(*_: object) -> None:
        raise AssertionError("the parts were re-chunked, not spliced")

    monkeypatch.setattr(Multipart, "_rechunk_all", no_rechunk)
    coord = inproc.api.coordinator
    await coord.meta.create_tenant("alice", coord.clock())
    mp = Multipart(coord)
    upload = await mp.create("alice", "bkt", "obj")
    data = random.Random(8).randbytes(11 * MIB)
    cuts = [(0, 5 * MIB), (5 * MIB, 10 * MIB), (10 * MIB, len(data))]
    profile = ChunkerProfile.default()
    parts = []
    for number, (lo, hi) in enumerate(cuts, 1):
        if number == 2 and not loose:
            name = f"{HIDDEN_NAME_PREFIX}old part"
            old = await ingest(coord, "alice", name, _reader(data[lo:hi]), profile, LIMIT)
            file_id = str(old.body["file_id"])
            assert (await coord.meta.get_file(file_id, "alice")).chunker == str(profile)
        else:
            file_id, _, _ = await mp.ingest_part(upload, number, _reader(data[lo:hi]))
        parts.append(UploadPart(number, file_id, hi - lo, "0" * 32, 0.0))
    made = await mp.assemble(upload, parts)
    stream = await ingest(coord, "alice", "stream", _reader(data), profile, LIMIT, reuse=False)
    object_id = str(made.body["file_id"])
    assert await coord.meta.get_manifest(object_id) == list(stream.manifest)
    assert (await coord.meta.get_file(object_id, "alice")).chunker == str(profile)
