"""How the SQLite metadata store packs values into as few bytes as it can (issue 19 item 4).

- ids: a chunk id or sha256 (64 lowercase hex digits) is stored as its 32 bytes, a file id
  (a canonical UUID) as its 16 bytes; anything else stays text. Both keep their order (hex
  digits sort like the nibbles they spell), so range scans and cursors work on the packed
  form. ``chunk_prefix`` is the first 8 bytes of a chunk id: the by-node index stores only
  that (see ``dfs.meta.sqlite_schema``).
- labels: tenants, chunker profiles and node ids are stored as small integers of the
  ``labels`` table (``Labels`` keeps the mapping, which never changes once written).
- manifests: a page of entries is one blob: a format byte, then per entry a varint size and
  the 32-byte chunk id, offsets implied by the sizes (``PACKED``); a file of one chunk whose
  id is the file's sha256 (every single-chunk file whose declared sha256 is true) stores only
  the size (``WHOLE``); entries that do not fit those shapes (odd ids, gaps) go as JSON
  (``EXPLICIT``).

Pure functions and one cache; no SQL but the labels table's two statements.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from dfs.meta.base import FILE_COMPLETE, FILE_PENDING, ManifestEntry

_HEX64 = re.compile(r"[0-9a-f]{64}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PREFIX = 8  # bytes of a chunk id the by-node index keeps

PACKED = 1
WHOLE = 2
EXPLICIT = 3

STATE_PENDING = 0
STATE_COMPLETE = 1

Packed = bytes | str  # an id as stored: its bytes, or its text when it is not canonical


def state_code(state: str) -> int:
    return STATE_COMPLETE if state == FILE_COMPLETE else STATE_PENDING


def state_name(code: int) -> str:
    return FILE_COMPLETE if code == STATE_COMPLETE else FILE_PENDING


def pack_hex(value: str) -> Packed:
    """A chunk id or sha256 as stored: 32 bytes when it is 64 lowercase hex digits. (Its
    bytes read back to the same text, not a pattern matched first: ``bytes.fromhex`` also
    takes upper case and spaces, which ``hex`` does not give back; ~0.2 us against ~0.5,
    and a commit of a batch of small files packs each chunk id several times.)"""
    if len(value) == 64:
        try:
            packed = bytes.fromhex(value)
        except ValueError:
            return value
        if packed.hex() == value:
            return packed
    return value


def unpack_hex(value: Packed) -> str:
    return value.hex() if isinstance(value, bytes) else value


def pack_file_id(value: str) -> Packed:
    """A file id as stored: 16 bytes when it is a canonical (lowercase) UUID. (A pattern
    and ``bytes.fromhex`` instead of ``uuid.UUID``: same answer, a few times cheaper, and
    a batch commit packs several ids per file.)"""
    if _UUID.fullmatch(value):
        return bytes.fromhex(value.replace("-", ""))
    return value


def unpack_file_id(value: Packed) -> str:
    if not isinstance(value, bytes):
        return value
    if len(value) != 16:
        return str(uuid.UUID(bytes=value))  # its ValueError, as before
    h = value.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def chunk_prefix(chunk_id: Packed) -> Packed:
    """What the by-node index keeps of a chunk id (all of an id that is not hex)."""
    return chunk_id[:PREFIX] if isinstance(chunk_id, bytes) else chunk_id


def prefix_range(prefix: Packed) -> tuple[Packed, Packed]:
    """The stored chunk ids that share ``prefix``, as an inclusive range."""
    if isinstance(prefix, bytes):
        rest = 32 - len(prefix)
        return prefix + b"\0" * rest, prefix + b"\xff" * rest
    return prefix, prefix


class Labels:
    """Strings (tenants, chunker profiles, node ids) <-> the small integers stored instead.

    Rows are only ever added, so the cache never goes stale; a miss reads the table (another
    process may have added the label)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._unsure: list[str] = []  # added by the transaction in progress

    def settle(self, committed: bool) -> None:
        """The write transaction ended: labels it added stay known only if it committed
        (a rolled-back id may be handed to another label next)."""
        if not committed:
            for label in self._unsure:
                self._names.pop(self._ids.pop(label, -1), None)
        self._unsure.clear()

    def mark(self) -> int:
        """Where the labels the transaction adds from now on start (``forget_since``)."""
        return len(self._unsure)

    def forget_since(self, mark: int) -> None:
        """A savepoint was rolled back: the labels added since ``mark`` were never stored."""
        for label in self._unsure[mark:]:
            self._names.pop(self._ids.pop(label, -1), None)
        del self._unsure[mark:]

    def _learn(self, label_id: int, label: str) -> int:
        self._ids[label] = label_id
        self._names[label_id] = label
        return label_id

    def find(self, db: sqlite3.Connection, label: str) -> int | None:
        """The label's id, or None if it was never stored."""
        if label in self._ids:
            return self._ids[label]
        row = db.execute("SELECT id FROM labels WHERE label=?", (label,)).fetchone()
        return None if row is None else self._learn(int(row[0]), label)

    def id(self, db: sqlite3.Connection, label: str) -> int:
        """The label's id, created if needed (inside the caller's write transaction)."""
        found = self.find(db, label)
        if found is not None:
            return found
        cur = db.execute("INSERT INTO labels (label) VALUES (?)", (label,))
        assert cur.lastrowid is not None
        self._unsure.append(label)
        return self._learn(int(cur.lastrowid), label)

    def name(self, db: sqlite3.Connection, label_id: int) -> str:
        if label_id not in self._names:
            row = db.execute("SELECT label FROM labels WHERE id=?", (label_id,)).fetchone()
            if row is None:
                raise KeyError(label_id)
            self._learn(label_id, str(row[0]))
        return self._names[label_id]


ROWS_PER_SELECT = 500  # ids bound in one ``IN (...)``: under every SQLite's variable limit


def rows_in(
    db: sqlite3.Connection, sql: str, keys: Sequence[Any], before: tuple[Any, ...] = ()
) -> Iterator[Any]:
    """The rows ``sql`` selects for ``keys``, its ``IN ({marks})`` bound to
    ``ROWS_PER_SELECT`` of them a statement; ``before``: the parameters ahead of the list."""
    for i in range(0, len(keys), ROWS_PER_SELECT):
        part = keys[i : i + ROWS_PER_SELECT]
        yield from db.execute(sql.format(marks=",".join("?" * len(part))), (*before, *part))


# --- node sets (the copies of a chunk, in its row) -------------------------------------------


def node_set(text: str | None) -> set[int]:
    return {int(n) for n in text.split(",")} if text else set()


def node_text(ids: set[int]) -> str:
    return ",".join(str(n) for n in sorted(ids))


# --- manifest pages ---------------------------------------------------------------------------


def _varint(n: int, out: bytearray) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7


def pack_page(entries: Sequence[ManifestEntry], start: int, sha256: str | None = None) -> bytes:
    """One blob for ``entries``, the first expected at offset ``start``; ``sha256`` (for a
    whole manifest) lets a single chunk that is the whole file be stored by its size alone."""
    if sha256 is not None and len(entries) == 1:
        e = entries[0]
        if e.offset == 0 and e.chunk_id == sha256 and start == 0:
            out = bytearray([WHOLE])
            _varint(e.size, out)
            return bytes(out)
    out = bytearray([PACKED])
    offset = start
    for e in entries:
        if e.offset != offset or not _HEX64.fullmatch(e.chunk_id) or e.size < 0:
            rows = [[x.offset, x.size, x.chunk_id] for x in entries]
            return bytes([EXPLICIT]) + json.dumps(rows, separators=(",", ":")).encode()
        _varint(e.size, out)
        out += bytes.fromhex(e.chunk_id)
        offset += e.size
    return bytes(out)


def unpack_page(data: bytes, start: int, sha256: str | None = None) -> list[ManifestEntry]:
    """The entries of a blob ``pack_page`` made (with the same ``start`` and ``sha256``)."""
    kind = data[0]
    if kind == WHOLE:
        size, _ = _read_varint(data, 1)
        assert sha256 is not None, "a whole-file manifest needs the file's sha256"
        return [ManifestEntry(0, size, sha256)]
    if kind == EXPLICIT:
        return [ManifestEntry(int(o), int(s), str(c)) for o, s, c in json.loads(data[1:])]
    out: list[ManifestEntry] = []
    pos, offset = 1, start
    while pos < len(data):
        size, pos = _read_varint(data, pos)
        out.append(ManifestEntry(offset, size, data[pos : pos + 32].hex()))
        pos += 32
        offset += size
    return out


def page_end(entries: Sequence[ManifestEntry], start: int) -> int:
    """Where the next page starts."""
    return entries[-1].offset + entries[-1].size if entries else start
