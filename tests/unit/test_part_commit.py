"""``PartFile.commit`` renames its temp file by name, so it checks that the name is still the
file it wrote and hashed: another file put at that predictable name meanwhile (a key of a
bucket restored beside it, named so) is never renamed over the target."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dfs.client.part_file import PartFile
from dfs.errors import IntegrityError


async def test_a_temp_file_replaced_under_its_name_is_not_committed(tmp_path: Path) -> None:
    target = tmp_path / "big"
    target.write_bytes(b"the user's file")
    data = b"the object's bytes"
    part = PartFile(target, "f1", resume=False)
    await part.open()
    await part.write(0, [data])
    await part.settle()
    await part.fsync()
    other = tmp_path / "other"
    other.write_bytes(b"bytes no hash checked")
    os.replace(other, part.path)  # what a restore of a key named as the temp file does
    with pytest.raises(IntegrityError, match="was replaced"):
        await part.commit(target, "f1", hashlib.sha256(data).hexdigest())
    assert target.read_bytes() == b"the user's file"


async def test_a_temp_file_still_under_its_name_is_committed(tmp_path: Path) -> None:
    target = tmp_path / "big"
    data = b"the object's bytes"
    part = PartFile(target, "f1", resume=False)
    await part.open()
    await part.write(0, [data])
    await part.settle()
    await part.fsync()
    await part.commit(target, "f1", hashlib.sha256(data).hexdigest())
    assert target.read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == ["big"]
