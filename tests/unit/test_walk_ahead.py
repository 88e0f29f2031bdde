"""An upload's listing on a thread (dfs.client.walk_ahead): small files come in the batches
``batches`` makes of the whole list, big ones one by one, each with its place in the listing,
the bytes listed reported; a listing that fails fails whoever reads it next (a batch it had
not finished is not handed over), and closing stops a listing that is still running. The listings the command line starts
before it loads the library (dfs.client.early_listing) hand over the same files in order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfs.client.batch_scan import batches
from dfs.client.early_listing import ListedEarly, keyed_files, listed_now
from dfs.client.local_files import LocalFile
from dfs.client.walk_ahead import WalkAhead

SMALL = 1000


def files(sizes: list[int]) -> list[LocalFile]:
    return [LocalFile(Path(f"/x/{n}"), f"f{n}", size) for n, size in enumerate(sizes)]


async def drain(walk: WalkAhead) -> tuple[list[list[int]], list[int]]:
    """The places of each batch's files, and of the big files, as they were handed over."""
    got, big = [], []
    while (batch := await walk.next_batch()) is not None:
        got.append([n for n, _f in batch])
    while (item := await walk.next_big()) is not None:
        big.append(item[0])
    return got, big


async def test_small_files_come_in_the_batches_of_the_whole_list_big_ones_alone() -> None:
    sizes = [10, 5000, 20, 30, 4000, *[7] * 1200, 9000]
    listed: list[int] = []
    walk = WalkAhead(files(sizes), SMALL, listed.append)
    got, big = await drain(walk)
    await walk.close()
    small = [(n, f) for n, f in enumerate(files(sizes)) if f.size <= SMALL]
    assert got == [[n for n, _f in b] for b in batches(small)]
    assert big == [n for n, size in enumerate(sizes) if size > SMALL]
    assert walk.count == len(sizes)
    assert sum(listed) == sum(sizes)


async def test_an_empty_listing_ends_at_once() -> None:
    walk = WalkAhead([], SMALL)
    assert await drain(walk) == ([], [])
    await walk.close()
    assert walk.count == 0


async def test_a_listing_that_fails_fails_its_readers_after_what_it_handed_over() -> None:
    def listing() -> Iterator[LocalFile]:
        yield from files([10] * 70)  # more than the first batch
        raise PermissionError("cannot list /x/secret")

    walk = WalkAhead(listing(), SMALL)
    first = await walk.next_batch()  # the first batch is full (62 files) before the error
    assert [n for n, _f in first or []] == list(range(62))
    with pytest.raises(PermissionError, match="secret"):
        await walk.next_batch()
    with pytest.raises(PermissionError):
        await walk.next_big()
    await walk.close()


async def test_closing_stops_a_listing_still_running() -> None:
    """The upload failed early: the listing's thread stops at its next file, not at the end
    of a tree of any size."""
    taken = 0
    parked, go_on = threading.Event(), threading.Event()

    def endless() -> Iterator[LocalFile]:
        nonlocal taken
        while True:
            taken += 1
            if taken == 100:
                parked.set()
                go_on.wait(10)  # held here until the reader has closed the listing
            yield LocalFile(Path("/x/f"), "f", 10)

    walk = WalkAhead(endless(), SMALL)
    assert await walk.next_batch() is not None
    assert await asyncio.to_thread(parked.wait, 10)
    closing = asyncio.create_task(walk.close())
    await asyncio.sleep(0)  # close has begun: the listing is told to stop
    go_on.set()
    await closing
    assert taken == 100


def test_an_early_listing_hands_over_every_file_in_order_from_its_own_thread() -> None:
    listed_on: list[str] = []

    def listing() -> Iterator[LocalFile]:
        for f in files([1, 2, 3, 4]):
            listed_on.append(threading.current_thread().name)
            yield f

    early = ListedEarly(listing())
    assert [f.size for f in early] == [1, 2, 3, 4]
    assert listed_on == ["dfs-list"] * 4  # not the reader's thread
    early.stop()


async def test_an_early_listing_feeds_walk_ahead_and_its_error_follows_its_files() -> None:
    def listing() -> Iterator[LocalFile]:
        yield from files([10, 20])
        raise PermissionError("the folder went away")

    walk = WalkAhead(ListedEarly(listing()), SMALL)
    with pytest.raises(PermissionError, match="went away"):
        await walk.next_batch()  # the batch is not full: only the error comes
    await walk.close()


def test_stopping_an_early_listing_ends_it_at_its_next_file() -> None:
    reached, release = threading.Event(), threading.Event()
    listed: list[int] = []

    def listing() -> Iterator[LocalFile]:
        for f in files(list(range(1000))):
            listed.append(f.size)
            if f.size == 2:
                reached.set()
                assert release.wait(10)
            yield f

    early = ListedEarly(listing())
    assert reached.wait(10)
    threading.Timer(0.05, release.set).start()
    early.stop()  # waits for the listing's thread, which ends at its next file
    assert listed == [0, 1, 2]
    assert [f.size for f in early] == [0, 1]  # what was listed before, then the end


def test_a_listing_started_now_answers_its_result_or_its_error_from_its_own_thread() -> None:
    ran_on: list[str] = []

    def listing() -> list[int]:
        ran_on.append(threading.current_thread().name)
        return [1, 2]

    assert listed_now(listing).result(timeout=10) == [1, 2]
    assert ran_on == ["dfs-list"]

    def broken() -> list[int]:
        raise PermissionError("the folder went away")

    with pytest.raises(PermissionError, match="went away"):
        listed_now(broken).result(timeout=10)


def test_keyed_files_map_a_folder_to_the_prefix_and_one_file_to_its_key(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_bytes(b"a")
    (tmp_path / "d" / "sub" / "b.txt").write_bytes(b"bb")
    files, prefix, skipped = keyed_files([tmp_path / "d"], "docs")
    assert (sorted(f.name for f in files), prefix, skipped) == (
        ["docs/a.txt", "docs/sub/b.txt"],
        "docs/",
        [],
    )
    one, key, _ = keyed_files([tmp_path / "d" / "a.txt"], "notes/first.txt")
    assert ([(f.name, f.size) for f in one], key) == ([("notes/first.txt", 1)], "notes/first.txt")
