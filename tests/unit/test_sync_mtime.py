"""A key's stored mtime against a local file's: the same time within a microsecond, not the
same text (``dfs.client.namespace_sync``'s skip of unchanged files); and the time a restore
sets from it, none when it is no settable time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dfs.client.sync_compare import same, same_mtime, stored_mtime
from dfs.client.sync_links import MTIME, mtime_text


def test_a_time_set_from_a_float_and_read_back_is_the_same_time(tmp_path: Path) -> None:
    # stored as the upload printed it; the download set the file's time from the float, and
    # its float read back prints one microsecond off (found by a search, as on a download)
    uploaded = 1733400000.1230063
    stored = mtime_text(uploaded)
    f = tmp_path / "f"
    f.write_bytes(b"x")
    os.utime(f, ns=(0, round(uploaded * 1e9)))
    back = f.stat().st_mtime
    assert mtime_text(back) != stored  # the text comparison called it changed
    assert same_mtime(stored, back)
    assert same(f, {"size": 1, "metadata": {MTIME: stored}}, checksum=False)
    assert not same(f, {"size": 2, "metadata": {MTIME: stored}}, checksum=False)


def test_other_times_and_no_time_are_not_thesame() -> None:
    assert not same_mtime("1733400000.123006", 1733400000.123009)
    assert not same_mtime("1733400000.123006", 1733400001.123006)
    for stored in (None, "", "yesterday", "nan", "inf"):
        assert not same_mtime(stored, 1733400000.0)


@pytest.mark.parametrize("stored", ["yesterday", "", "nan", "inf", "-inf", "1e300", None, 5])
def test_an_mtime_metadata_that_is_no_settable_time_is_not_set(stored: object) -> None:
    """User metadata: any S3 client may set ``mtime`` to anything; a restore then sets no
    time for that object rather than failing (os.utime takes no NaN, nor 1e300)."""
    obj = {"metadata": {MTIME: stored}}
    assert stored_mtime(obj) == (5.0 if stored == 5 else None)


def test_a_stored_mtime_is_the_time_to_set() -> None:
    assert stored_mtime({"metadata": {MTIME: "1733400000.123006"}}) == 1733400000.123006
    assert stored_mtime({"metadata": {}}) is None
    assert stored_mtime({}) is None
