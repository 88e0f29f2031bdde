"""A batch of pending files on their way through finalize's checks
(``Coordinator.finalize_uploads``): each file's record, distinct chunks and receipts, and
the filter that drops the files failing a check while recording why, so one bad file of a
batch never fails the others; what a has-chunks round changes in the recorded copies; and
which nodes a plan places on or a finalize asks for copies (``excluding``: not those a
client's writes just failed on, a hung one would hold the answer for its whole deadline)
and whether they hold enough; and files recorded complete at once when every chunk is held
(``commit_held_files``)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence, Set
from dataclasses import dataclass, field

from dfs import auth
from dfs.errors import DfsError, IncompleteUpload
from dfs.meta.base import (
    FILE_COMPLETE,
    FileRecord,
    Location,
    ManifestEntry,
    MetadataStore,
    NodeRecord,
)


@dataclass
class Finalizing:
    """A pending file on its way through finalize's checks."""

    index: int
    rec: FileRecord
    chunks: dict[str, int]
    receipts: Mapping[str, object]
    checked: dict[str, bool] = field(default_factory=dict)  # chunk id -> receipt valid

    def receipted(self, secret: bytes, chunk_id: str) -> bool:
        """Whether a node's receipt proves this upload sent ``chunk_id``. Each receipt's
        HMAC is checked once: finalize asks twice (which chunks need the owned read, then
        the receipts check)."""
        ok = self.checked.get(chunk_id)
        if ok is None:
            receipt = self.receipts.get(chunk_id)
            ok = self.checked[chunk_id] = auth.receipt_ok(
                secret, receipt, self.rec.file_id, chunk_id
            )
        return ok

    def check_receipts(self, secret: bytes, owned: set[str]) -> None:
        """IncompleteUpload unless each chunk is ``owned`` by the tenant or has a receipt."""
        unproven = [c for c in self.chunks if c not in owned and not self.receipted(secret, c)]
        if unproven:
            raise IncompleteUpload(
                f"{len(unproven)} of {len(self.chunks)} chunks were not sent by this upload; "
                "send them and finalize again",
                missing=unproven[:100],
            )


def keep_passing(
    todo: list[Finalizing],
    results: list[FileRecord | DfsError | None],
    check: Callable[[Finalizing], None],
) -> list[Finalizing]:
    """The files that pass ``check``; the error of each other one goes to its result."""
    kept = []
    for f in todo:
        try:
            check(f)
        except DfsError as exc:
            results[f.index] = exc
            continue
        kept.append(f)
    return kept


def copy_changes(
    chunks: Mapping[str, int],
    holders: Mapping[str, set[str]],
    seen: set[str],
    known: Mapping[str, set[str]],
) -> tuple[list[Location], list[Location]]:
    """The copies a has-chunks round found that are not recorded (``known``), and the
    recorded ones that a node which answered (``seen``) no longer holds."""
    new = [Location(c, n, size) for c, size in chunks.items() for n in holders[c] - known[c]]
    gone = [
        Location(c, n, size) for c, size in chunks.items() for n in (known[c] - holders[c]) & seen
    ]
    return new, gone


def excluding(live: Sequence[NodeRecord], exclude: Collection[str], rf: int) -> list[NodeRecord]:
    """The nodes a plan places chunks on, or a finalize or a page's proof asks for copies:
    the ``live`` ones not in ``exclude`` (a client's failed nodes: a hung one would hold a
    write or an answer for its whole deadline), unless too few are left to hold ``rf``
    copies: then all of them."""
    left = [n for n in live if n.node_id not in exclude]
    return left if len(left) >= rf else list(live)


def counted(copies: Mapping[str, Collection[str]], chunk_id: str, draining: Set[str]) -> set[str]:
    """The copies of ``chunk_id`` that count for a commit: not those on draining nodes."""
    return set(copies.get(chunk_id, ())) - draining


def counting(holders: Mapping[str, set[str]], draining: Set[str]) -> dict[str, set[str]]:
    """Each chunk's copies that count for a commit: not those on draining nodes. A node
    being drained is removed once the copies of its recorded chunks are elsewhere; an upload
    that placed a chunk there before the drain began and counted that copy could commit
    right after the drain said done, and lose it with the node. It sends the chunk to
    another node instead (finalize answers ``incomplete_upload``; the copy is recorded all
    the same, and the drain moves it)."""
    return {c: n - draining for c, n in holders.items()} if draining else dict(holders)


def has_copies(holders: Mapping[str, set[str]], need: int) -> Callable[[Finalizing], None]:
    """``check_copies`` of a file's chunks, for ``keep_passing``."""
    return lambda f: check_copies(f.chunks, holders, need)


def check_copies(chunks: Mapping[str, int], holders: Mapping[str, set[str]], need: int) -> None:
    """IncompleteUpload unless each chunk has at least ``need`` holders."""
    missing = [c for c in chunks if len(holders.get(c, ())) < need]
    if missing:
        raise IncompleteUpload(
            f"{len(missing)} of {len(chunks)} chunks have fewer than "
            f"{need} copies; send them and finalize again",
            missing=missing[:100],
        )


async def commit_held_files(
    meta: MetadataStore,
    files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]],
    now: float,
) -> tuple[dict[str, FileRecord], set[str]]:
    """``files`` (every chunk found held with its copies) recorded complete: the records
    complete, and the ids recorded pending. A chunk that garbage collection deleted after
    it was found held makes the store refuse (IncompleteUpload): the files are then left
    pending, to be finalized as any upload (finalize finds the chunk short and the client
    sends it again), never failing the whole batch. DynamoDB records each file on its own,
    so some of them may be complete by then, or pending (a big file is created, then
    committed): those are answered as they are."""
    try:
        done = await meta.create_and_commit_files(files, now)
        return {rec.file_id: rec for rec in done}, set()
    except IncompleteUpload:  # one request's files: one tenant's
        found = await meta.get_files([rec.file_id for rec, _m in files], files[0][0].tenant)
    complete = {f: rec for f, rec in found.items() if rec.state == FILE_COMPLETE}
    return complete, set(found) - set(complete)
