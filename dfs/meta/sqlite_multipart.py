"""S3 multipart uploads on SQLite (``dfs.meta.multipart.MultipartStore``): the
``s3_uploads`` and ``s3_upload_parts`` tables.

A mixin of ``SqliteMetadataStore``, kept apart so that the store's module stays small. Every
check-then-write (a part put while the upload is open, a state move) runs in one
``BEGIN IMMEDIATE`` transaction, so two callers never both see the state they expect.

| table           | key                       | columns                                          |
|-----------------|---------------------------|--------------------------------------------------|
| s3_uploads      | upload_id                 | tenant, bucket, key, created_at, content_type, user_metadata (JSON pairs), state, headers (JSON pairs, added later), checksum (algorithm, added later); indexed by (bucket, key, upload_id) and created_at |
| s3_upload_parts | upload_id, part_number    | file_id, size, etag, last_modified, checksums (JSON pairs, added later) |
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeVar

from dfs.errors import UploadNotFound
from dfs.meta.multipart import (
    MAX_PARTS,
    UPLOAD_DONE,
    UPLOAD_OPEN,
    MultipartUpload,
    UploadPart,
)

T = TypeVar("T")

MULTIPART_SCHEMA = """
CREATE TABLE IF NOT EXISTS s3_uploads (
    upload_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL,
    created_at REAL NOT NULL, content_type TEXT NOT NULL, user_metadata TEXT NOT NULL,
    state TEXT NOT NULL, headers TEXT NOT NULL DEFAULT '[]', checksum TEXT NOT NULL DEFAULT '')
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS s3_uploads_by_key ON s3_uploads (bucket, key, upload_id);
CREATE INDEX IF NOT EXISTS s3_uploads_by_age ON s3_uploads (created_at);
CREATE TABLE IF NOT EXISTS s3_upload_parts (
    upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, file_id TEXT NOT NULL,
    size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified REAL NOT NULL,
    checksums TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (upload_id, part_number)) WITHOUT ROWID;
"""

_UPLOAD_COLUMNS = (
    "upload_id, tenant, bucket, key, created_at, content_type, user_metadata, state, headers,"
    " checksum"
)
_PART_COLUMNS = "part_number, file_id, size, etag, last_modified, checksums"
_ADDED = (  # columns added after the tables were first made: (table, column, definition)
    ("s3_uploads", "headers", "TEXT NOT NULL DEFAULT '[]'"),
    ("s3_uploads", "checksum", "TEXT NOT NULL DEFAULT ''"),
    ("s3_upload_parts", "checksums", "TEXT NOT NULL DEFAULT '[]'"),
)


def apply_multipart_schema(conn: sqlite3.Connection) -> None:
    """Create the multipart tables that are missing (inside the caller's transaction)."""
    for stmt in MULTIPART_SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    for table, column, definition in _ADDED:  # a database made before they were kept
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def _upload(row: sqlite3.Row) -> MultipartUpload:
    pairs = tuple((str(k), str(v)) for k, v in json.loads(row["user_metadata"]))
    return MultipartUpload(
        upload_id=row["upload_id"],
        tenant=row["tenant"],
        bucket=row["bucket"],
        key=row["key"],
        created_at=row["created_at"],
        content_type=row["content_type"],
        user_metadata=pairs,
        state=row["state"],
        headers=tuple((str(k), str(v)) for k, v in json.loads(row["headers"])),
        checksum=row["checksum"],
    )


def _part(row: sqlite3.Row) -> UploadPart:
    sums = tuple((str(a), str(v)) for a, v in json.loads(row["checksums"]))
    return UploadPart(
        row["part_number"], row["file_id"], row["size"], row["etag"], row["last_modified"], sums
    )


def _get(db: sqlite3.Connection, upload_id: str) -> MultipartUpload:
    row = db.execute(
        f"SELECT {_UPLOAD_COLUMNS} FROM s3_uploads WHERE upload_id=?", (upload_id,)
    ).fetchone()
    if row is None:
        raise UploadNotFound(f"no multipart upload {upload_id}")
    return _upload(row)


class SqliteMultipartMixin:
    if TYPE_CHECKING:  # provided by SqliteMetadataStore

        @property
        def _db(self) -> sqlite3.Connection: ...
        async def _run(self, fn: Callable[[], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        def _tx(
            self, conn: sqlite3.Connection | None = None
        ) -> AbstractContextManager[sqlite3.Connection]: ...

    async def create_multipart_upload(self, upload: MultipartUpload) -> None:
        u = upload
        meta = json.dumps([list(p) for p in u.user_metadata])
        await self._run(
            lambda: self._db.execute(
                f"INSERT INTO s3_uploads ({_UPLOAD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    u.upload_id,
                    u.tenant,
                    u.bucket,
                    u.key,
                    u.created_at,
                    u.content_type,
                    meta,
                    u.state,
                    json.dumps([list(p) for p in u.headers]),
                    u.checksum,
                ),
            )
        )

    async def get_multipart_upload(self, upload_id: str) -> MultipartUpload:
        return await self._read(lambda db: _get(db, upload_id))

    async def put_upload_part(self, upload_id: str, part: UploadPart) -> str | None:
        def op() -> str | None:
            with self._tx() as db:
                if _get(db, upload_id).state != UPLOAD_OPEN:
                    raise UploadNotFound(f"multipart upload {upload_id} is not open")
                old = db.execute(
                    "SELECT file_id FROM s3_upload_parts WHERE upload_id=? AND part_number=?",
                    (upload_id, part.part_number),
                ).fetchone()
                db.execute(
                    f"INSERT OR REPLACE INTO s3_upload_parts (upload_id, {_PART_COLUMNS})"
                    " VALUES (?,?,?,?,?,?,?)",
                    (
                        upload_id,
                        part.part_number,
                        part.file_id,
                        part.size,
                        part.etag,
                        part.last_modified,
                        json.dumps([list(c) for c in part.checksums]),
                    ),
                )
                return None if old is None else str(old[0])

        return await self._run(op)

    async def list_upload_parts(
        self, upload_id: str, after: int = 0, limit: int = MAX_PARTS
    ) -> list[UploadPart]:
        def op(db: sqlite3.Connection) -> list[UploadPart]:
            rows = db.execute(
                f"SELECT {_PART_COLUMNS} FROM s3_upload_parts WHERE upload_id=?"
                " AND part_number>? ORDER BY part_number LIMIT ?",
                (upload_id, after, limit),
            )
            return [_part(r) for r in rows]

        return await self._read(op)

    async def set_multipart_state(
        self, upload_id: str, expect: Collection[str], state: str
    ) -> MultipartUpload:
        def op() -> MultipartUpload:
            with self._tx() as db:
                before = _get(db, upload_id)
                if before.state not in expect:
                    raise UploadNotFound(f"multipart upload {upload_id} is {before.state}")
                db.execute("UPDATE s3_uploads SET state=? WHERE upload_id=?", (state, upload_id))
                return before

        return await self._run(op)

    async def delete_multipart_upload(self, upload_id: str) -> None:
        def op() -> None:
            with self._tx() as db:
                db.execute("DELETE FROM s3_upload_parts WHERE upload_id=?", (upload_id,))
                db.execute("DELETE FROM s3_uploads WHERE upload_id=?", (upload_id,))

        await self._run(op)

    async def list_multipart_uploads(
        self, bucket: str, prefix: str = "", after: tuple[str, str] | None = None, limit: int = 1000
    ) -> list[MultipartUpload]:
        def op(db: sqlite3.Connection) -> list[MultipartUpload]:
            after_key, after_id = after or ("", "")
            rows = db.execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM s3_uploads WHERE bucket=? AND state!=?"
                " AND substr(key, 1, ?)=? AND (key>? OR (key=? AND upload_id>?))"
                " ORDER BY key, upload_id LIMIT ?",
                (bucket, UPLOAD_DONE, len(prefix), prefix, after_key, after_key, after_id, limit),
            )
            return [_upload(r) for r in rows]

        return await self._read(op)

    async def count_multipart_uploads(self, limit: int) -> int:
        def op(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT COUNT(*) FROM (SELECT 1 FROM s3_uploads LIMIT ?)", (limit,)
            ).fetchone()
            return int(row[0])

        return await self._read(op)

    async def stale_multipart_uploads(
        self, before: float, limit: int = 1000
    ) -> list[MultipartUpload]:
        def op(db: sqlite3.Connection) -> list[MultipartUpload]:
            rows = db.execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM s3_uploads WHERE created_at<?"
                " ORDER BY created_at, upload_id LIMIT ?",
                (before, limit),
            )
            return [_upload(r) for r in rows]

        return await self._read(op)
