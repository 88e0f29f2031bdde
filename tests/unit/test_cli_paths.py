"""The command line's path and time arguments: which of ``upload``'s paths is the
destination (``settle_paths``), the times ``download --at`` and ``prune --before`` take
(``PointInTime``) and the lengths ``prune --keep-within`` takes (``Duration``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
import pytest

from dfs.client.cli_namespace_transfer import (
    LocalOrRemote,
    NamedLikeRemote,
    Remote,
    settle_paths,
)
from dfs.client.cli_times import Duration, PointInTime


def convert(*values: str) -> list[Path | Remote]:
    kind = LocalOrRemote(exists=True, allow_dash=True, path_type=Path)
    return [kind.convert(v, None, None) for v in values]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A current folder holding ``photos/``, ``logs/a.log``, ``logs/b.log`` and ``pic.jpg``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    (tmp_path / "logs").mkdir()
    for name in ("a.log", "b.log"):
        (tmp_path / "logs" / name).write_text(name)
    (tmp_path / "pic.jpg").write_text("x")
    return tmp_path


def test_a_folder_path_that_is_also_a_local_folder_is_the_destination_when_last(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = convert("pic.jpg", "photos/")
    assert isinstance(args[1], NamedLikeRemote)
    settled = settle_paths(args, by_name=False)
    assert settled == [Path("pic.jpg"), Remote("photos/")]
    assert type(settled[1]) is Remote
    assert "Note: photos/ is taken as the remote path" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "by_name", "expected"),
    [
        # alone, first, or with --prefix/--name it is the local folder; so is ./photos/
        (["photos/"], False, [Path("photos")]),
        (["photos/", "pic.jpg"], False, [Path("photos"), Path("pic.jpg")]),
        (["pic.jpg", "photos/"], True, [Path("pic.jpg"), Path("photos")]),
        (["pic.jpg", "./photos/"], False, [Path("pic.jpg"), Path("photos")]),
        # a glob's files (remote-shaped, no trailing slash) are files, the last one too
        (["logs/a.log", "logs/b.log"], False, [Path("logs/a.log"), Path("logs/b.log")]),
        # a remote path that names nothing local stays remote wherever it stands
        (["pic.jpg", "photos/2024/x.jpg"], False, [Path("pic.jpg"), Remote("photos/2024/x.jpg")]),
    ],
)
def test_other_paths_keep_what_they_name(
    here: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    by_name: bool,
    expected: list[Path | Remote],
) -> None:
    assert settle_paths(convert(*args), by_name=by_name) == expected
    assert "Note" not in capsys.readouterr().err


def test_local_paths_named_like_remote_paths_are_still_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "gone").symlink_to(tmp_path / "nowhere")  # there, and dangling
    with pytest.raises(click.BadParameter, match="does not exist"):
        LocalOrRemote(exists=True, path_type=Path).convert("sub/gone", None, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-05T14:00:00Z", datetime(2026, 12, 5, 14, tzinfo=UTC).timestamp()),
        ("2026-12-05T15:00:00+01:00", datetime(2026, 12, 5, 14, tzinfo=UTC).timestamp()),
        ("2026-12-05 14:00", datetime(2026, 12, 5, 14).timestamp()),  # local time
        ("2026-12-05", datetime(2026, 12, 5).timestamp()),  # its midnight, local
        ("2026", datetime(2026, 1, 1).timestamp()),  # a year, not 2026 s after 1970
        ("2026-12", datetime(2026, 12, 1).timestamp()),
        ("1764943200.5", 1764943200.5),
        (" 1764943200 ", 1764943200.0),
    ],
)
def test_times_download_at_takes(text: str, expected: float) -> None:
    assert PointInTime().convert(text, None, None) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "", "nan", "inf", "-1", "1e300", "2026-13-01", "2026-13", "1969"]
)
def test_what_is_no_time(text: str) -> None:
    with pytest.raises(click.BadParameter, match="is not a time"):
        PointInTime().convert(text, None, None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("1w12h", 7 * 86400 + 12 * 3600),
        ("90m", 5400),
        (" 45s ", 45),
        ("0s", 0),
    ],
)
def test_lengths_keep_within_takes(text: str, seconds: float) -> None:
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize(
    "text", ["30", "d", "-1d", "1.5d", "1y", "6M", "1D", "\u0663d", "", "1d 2h", "9" * 13 + "s"]
)
def test_what_is_no_length(text: str) -> None:
    with pytest.raises(click.BadParameter, match="is not a length of time"):
        Duration().convert(text, None, None)
