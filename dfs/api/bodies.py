"""The shapes the coordinator reads and answers: an upload request, a file's metadata body,
a node reference, who is calling.

Kept apart from ``dfs.api.coordinator`` because the route modules, the repair and GC passes
and the coordinator itself all speak them, and because they are pure: parsing and building
JSON-ready dicts, no I/O, no aiohttp.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dfs import auth, placement, protocol
from dfs.chunking import ChunkerProfile
from dfs.errors import DfsError, InvalidRequest
from dfs.ids import parse_chunk_id, parse_sha256
from dfs.meta.base import FileRecord, ManifestEntry, NodeRecord

DEFAULT_TENANT = "default"
ADMIN_TENANT = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a tenant and a role, and which token (its id and label) says so."""

    tenant: str
    role: str
    token_id: str = ""
    label: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == auth.ROLE_ADMIN


def unicode_text(value: str, field: str) -> str:
    """``value`` if it is valid Unicode text: JSON's ``\\ud800`` escapes and URL escapes can
    smuggle in a lone surrogate, which no store can encode (it answered 500)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{field} must be valid Unicode (no lone surrogates)") from None
    return value


def parse_name(value: object, field: str) -> str:
    """A file name: 1-MAX_FILE_NAME characters of valid Unicode, no NUL."""
    if not isinstance(value, str) or not 0 < len(value) <= protocol.MAX_FILE_NAME:
        raise InvalidRequest(f"{field} must be a string of 1-{protocol.MAX_FILE_NAME} characters")
    if "\x00" in value:
        raise InvalidRequest(f"{field} must not contain NUL")
    return unicode_text(value, field)


def _chunk_size(value: object, i: int) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 0 < value <= protocol.MAX_CHUNK_SIZE
    ):
        raise InvalidRequest(
            f"chunks[{i}].size must be an integer in [1, {protocol.MAX_CHUNK_SIZE}]"
        )
    return value


def parse_manifest(
    chunks: object, offset: int = 0, limit: int = protocol.MAX_CHUNKS_PER_FILE
) -> list[ManifestEntry]:
    """A list of ``{"sha256", "size"}`` as manifest entries, the first at ``offset``."""
    if not isinstance(chunks, list) or len(chunks) > limit:
        raise InvalidRequest(f"chunks must be a list of at most {limit}")
    manifest: list[ManifestEntry] = []
    for i, c in enumerate(chunks):
        if not isinstance(c, dict):
            raise InvalidRequest(f"chunks[{i}] must be an object")
        chunk_id = parse_chunk_id(c.get("sha256"), f"chunks[{i}].sha256")
        n = _chunk_size(c.get("size"), i)
        manifest.append(ManifestEntry(offset, n, chunk_id))
        offset += n
    return manifest


def parse_mode(value: object) -> int | None:
    """A file's permission bits, optional: an integer in [0, 0o7777]."""
    if value is None:
        return None
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 0 <= value <= protocol.MAX_FILE_MODE
    ):
        raise InvalidRequest(f"mode must be an integer in [0, {protocol.MAX_FILE_MODE}] (0o7777)")
    return value


def parse_for_object(body: Mapping[str, Any]) -> bool:
    """A body's ``for_object``, optional (absent: False), a boolean (not null): the
    uploader links the file to an object version next, so it is committed marked and no
    lookup by content hands it out (docs/WIRE.md)."""
    value = body.get("for_object", False)
    if not isinstance(value, bool):
        raise InvalidRequest("for_object must be a boolean")
    return value


def parse_mtime(value: object) -> float | None:
    """A file's modification time in Unix seconds, optional: a finite number within range."""
    if value is None:
        return None
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or abs(value) > protocol.MAX_ABS_MTIME
    ):
        raise InvalidRequest(
            f"mtime must be a finite number of seconds within +-{protocol.MAX_ABS_MTIME:.0f}"
        )
    return float(value)


@functools.lru_cache(maxsize=64)
def canonical_chunker(text: str) -> str:
    """The profile string as stored (``str(ChunkerProfile.parse(text))``), remembered: every
    file of a batch names the same one. Invalid text raises each time (not cached)."""
    return str(ChunkerProfile.parse(text))


@dataclass(frozen=True, slots=True)
class UploadRequest:
    """One file an upload plans: its name, size, sha256, chunker profile and manifest."""

    name: str
    size: int
    sha256: str
    chunker: str
    manifest: list[ManifestEntry]
    mode: int | None = None
    mtime: float | None = None
    sha256_verified: bool = False  # the API hashed the bytes (ingest), never from a body
    for_object: bool = False  # the uploader links it to an object next (``FileRecord``)

    @classmethod
    def parse(cls, body: dict[str, Any]) -> UploadRequest:
        name = parse_name(body.get("name"), "name")
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidRequest("size must be a non-negative integer")
        sha256 = parse_sha256(body.get("sha256"))
        chunker = canonical_chunker(str(body.get("chunker", "")))
        manifest = parse_manifest(body.get("chunks"))
        total = manifest[-1].offset + manifest[-1].size if manifest else 0
        if total != size:
            raise InvalidRequest(f"chunk sizes add up to {total}, not the file size {size}")
        mode, mtime = parse_mode(body.get("mode")), parse_mtime(body.get("mtime"))
        for_object = parse_for_object(body)
        return cls(name, size, sha256, chunker, manifest, mode, mtime, for_object=for_object)

    def record(self, file_id: str, tenant: str, created_at: float) -> FileRecord:
        """The pending file row this request creates."""
        return FileRecord(
            file_id=file_id,
            name=self.name,
            size=self.size,
            sha256=self.sha256,
            chunker=self.chunker,
            tenant=tenant,
            created_at=created_at,
            chunk_count=len(self.manifest),
            mode=self.mode,
            mtime=self.mtime,
            sha256_verified=self.sha256_verified,
            for_object=self.for_object,
        )


def distinct_chunks(manifest: Sequence[ManifestEntry]) -> dict[str, int]:
    """chunk id -> size, in first-seen order."""
    out: dict[str, int] = {}
    for e in manifest:
        out.setdefault(e.chunk_id, e.size)
    return out


def node_ref(node: NodeRecord) -> dict[str, str]:
    return {"node_id": node.node_id, "url": node.url}


def file_body(rec: FileRecord) -> dict[str, Any]:
    """A file's metadata; ``mode`` and ``mtime`` only when its upload gave them."""
    body: dict[str, Any] = {
        "file_id": rec.file_id,
        "name": rec.name,
        "size": rec.size,
        "sha256": rec.sha256,
        "chunker": rec.chunker,
        "chunks": rec.chunk_count,
        "state": rec.state,
        "created_at": rec.created_at,
    }
    return with_local_attrs(body, rec)


def with_local_attrs(body: dict[str, Any], rec: FileRecord) -> dict[str, Any]:
    """``body`` with the file's ``mode`` and ``mtime``, each only when its upload gave it."""
    if rec.mode is not None:
        body["mode"] = rec.mode
    if rec.mtime is not None:
        body["mtime"] = rec.mtime
    return body


def error_entry(file_id: str, exc: DfsError) -> dict[str, Any]:
    """A batch answer's entry for a file that failed: its id and the error body."""
    return {"file_id": file_id, **exc.to_body()}


def rotations(targets: Sequence[NodeRecord]) -> list[tuple[NodeRecord, str]]:
    """Each node of ``targets`` as the primary, with the forward header naming the others in
    rotation order: the i-th rotation goes with the i-th put capability
    (``Coordinator.put_caps``)."""
    rots = [placement.rotation(targets, i) for i in range(len(targets))]
    return [(p, protocol.forward_header([(n.node_id, n.url) for n in r])) for p, r in rots]
