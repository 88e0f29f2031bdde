"""A batch of pending files on their way through finalize's checks
(``Coordinator.finalize_uploads``): each file's record, distinct chunks and receipts, and
the filter that drops the files failing a check while recording why, so one bad file of a
batch never fails the others."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dfs import auth
from dfs.errors import DfsError
from dfs.meta.base import FileRecord


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
