"""A file's optional mode and mtime (issue 16): what an upload body may say, what file
metadata answers, and how a download puts them back on the written file."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from dfs.api.bodies import UploadRequest, file_body
from dfs.client.cli_output import listing_line
from dfs.client.file_writer import CREATED_MODE, final_attrs, mtime_ns
from dfs.errors import InvalidRequest

SHA = "0" * 64


def body(**extra: Any) -> dict[str, Any]:
    return {"name": "f", "size": 0, "sha256": SHA, "chunker": "fixed:4096", "chunks": [], **extra}


def test_mode_and_mtime_are_optional_and_kept() -> None:
    plain = UploadRequest.parse(body())
    assert (plain.mode, plain.mtime) == (None, None)
    assert "mode" not in file_body(plain.record("id", "t", 1.0))
    assert "mtime" not in file_body(plain.record("id", "t", 1.0))
    req = UploadRequest.parse(body(mode=0o4755, mtime=12))
    assert (req.mode, req.mtime) == (0o4755, 12.0)
    out = file_body(req.record("id", "t", 1.0))
    assert (out["mode"], out["mtime"]) == (0o4755, 12.0)


@pytest.mark.parametrize(
    "extra",
    [
        {"mode": -1},
        {"mode": 0o10000},
        {"mode": "644"},
        {"mode": True},
        {"mode": 1.5},
        {"mtime": math.inf},
        {"mtime": math.nan},
        {"mtime": 2.0**40},
        {"mtime": -(2.0**40)},
        {"mtime": "now"},
        {"mtime": False},
    ],
)
def test_bad_mode_or_mtime_is_refused(extra: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        UploadRequest.parse(body(**extra))


def test_restore_applies_mtime_and_mode_less_the_umask(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    fd = os.open(f, os.O_WRONLY)
    try:
        final_attrs(fd, {"mode": 0o4777, "mtime": 1_000_000_000.5})  # set-uid: not restored
        mask = os.umask(0o022)  # the process umask, read once by the download module too
        os.umask(mask)
        assert stat.S_IMODE(f.stat().st_mode) == 0o777 & ~mask
        assert f.stat().st_mtime_ns == 1_000_000_000_500_000_000
        before = f.stat()
        final_attrs(fd, {})  # a file stored without them: 0644 less the umask, mtime kept
        assert stat.S_IMODE(f.stat().st_mode) == CREATED_MODE
        assert f.stat().st_mtime_ns == before.st_mtime_ns
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("seconds", "ns"),
    [
        (1_600_000_000.25, 1_600_000_000_250_000_000),  # round(s * 1e9) gave ...249_999_872
        (1_500_000_000, 1_500_000_000_000_000_000),
        (0.5, 500_000_000),
        (-1.5, -1_500_000_000),
    ],
)
def test_an_mtime_is_set_to_the_nanosecond_its_float_says(seconds: float, ns: int) -> None:
    assert mtime_ns(seconds) == ns


def test_long_listing_shows_mode_and_mtime_or_dashes() -> None:
    f = {"file_id": "id", "size": 3, "sha256": SHA, "name": "a b", "mode": 0o640, "mtime": 0}
    assert listing_line(f) == f"id\t3\t{SHA[:12]}\ta b"
    assert listing_line(f, long=True).split("\t")[3] == "-rw-r-----"
    f.pop("mode")
    assert listing_line(f, long=True).split("\t")[3:] == ["-", "-", "a b"]
