"""Request bodies of PutObject as the chunker reads them: plain, or ``aws-chunked``.

``BodyReader.read(n)`` hands ``dfs.api.ingest`` the object's bytes while computing their
MD5 (the ETag of a single PUT) and, when the client signed the payload, their SHA-256 (to
check against ``x-amz-content-sha256`` before the object is linked). An ``aws-chunked``
body (``STREAMING-UNSIGNED-PAYLOAD-TRAILER``) is decoded from its chunk framing, and its
trailing ``x-amz-checksum-crc32`` is verified when present. Chunk-signed streaming bodies
(``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``) are not supported (501).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from dfs.s3.errors import S3Error, not_implemented
from dfs.s3.sigv4 import STREAMING_UNSIGNED_TRAILER, UNSIGNED

ReadFn = Callable[[int], Awaitable[bytes]]
READ_BLOCK = 1 << 20
MAX_CHUNK_HEADER = 4096


class BodyCheck(Protocol):
    """More checks of the decoded body (``dfs.s3.checksums``): fed every block, then asked
    at the body's end with the trailers."""

    def update(self, data: bytes) -> None: ...
    def verify(self, trailers: Mapping[str, str]) -> None: ...


def bad_digest(what: str) -> S3Error:
    return S3Error("BadDigest", 400, f"the {what} you specified did not match the body")


class BodyReader:
    """The decoded body. What the client declared of it (signed SHA-256, Content-MD5, a CRC32
    header or trailer) is checked as the end of the body is read, so that ``dfs.api.ingest``
    fails before it commits a file of bytes the client did not send."""

    def __init__(
        self,
        read: ReadFn,
        payload_hash: str,
        encoding: str,
        content_md5: str | None = None,
        crc32_header: str | None = None,
        check: BodyCheck | None = None,
    ) -> None:
        self._read = read
        self._check = check
        self._content_md5 = content_md5
        self._crc32_header = crc32_header
        self._verified = False
        self._buf = b""
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256() if len(payload_hash) == 64 else None
        self.payload_hash = payload_hash.lower()
        self.chunked = "aws-chunked" in encoding or payload_hash == STREAMING_UNSIGNED_TRAILER
        if payload_hash.startswith("STREAMING-") and payload_hash != STREAMING_UNSIGNED_TRAILER:
            raise not_implemented(f"the {payload_hash} body encoding")
        if not self.chunked and payload_hash != UNSIGNED and self.sha256 is None:
            raise S3Error("InvalidArgument", 400, f"x-amz-content-sha256 {payload_hash!r}")
        self._left = 0  # bytes left of the current aws-chunked chunk
        self._done = False
        self.crc32 = 0
        self.trailers: dict[str, str] = {}

    async def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            more = await self._read(READ_BLOCK)
            if not more:
                return False
            self._buf += more
        return True

    async def _line(self) -> str:
        while b"\r\n" not in self._buf:
            if len(self._buf) > MAX_CHUNK_HEADER or not await self._fill(len(self._buf) + 1):
                raise S3Error("IncompleteBody", 400, "malformed aws-chunked body")
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line.decode("ascii", "replace")

    async def _next_chunk_header(self) -> None:
        size_text = (await self._line()).split(";", 1)[0].strip()
        try:
            self._left = int(size_text, 16)
        except ValueError:
            raise S3Error("IncompleteBody", 400, "malformed aws-chunked chunk size") from None
        if self._left == 0:
            while line := await self._line():
                name, _, value = line.partition(":")
                self.trailers[name.strip().lower()] = value.strip()
            self._done = True

    async def _read_chunked(self, n: int) -> bytes:
        while not self._done and self._left == 0:
            await self._next_chunk_header()
        if self._done:
            return b""
        if not self._buf and not await self._fill(1):
            raise S3Error("IncompleteBody", 400, "the aws-chunked body ended early")
        data, self._buf = self._buf[: min(n, self._left)], self._buf[min(n, self._left) :]
        self._left -= len(data)
        if self._left == 0:
            if not await self._fill(2) or self._buf[:2] != b"\r\n":
                raise S3Error("IncompleteBody", 400, "malformed aws-chunked chunk end")
            self._buf = self._buf[2:]
        return data

    async def read(self, n: int) -> bytes:
        data = await self._read_chunked(n) if self.chunked else await self._read(min(n, READ_BLOCK))
        if not data:
            self._verify()
            return data
        self.md5.update(data)
        if self.sha256 is not None and not self.chunked:
            self.sha256.update(data)
        self.crc32 = zlib.crc32(data, self.crc32)
        if self._check is not None:
            self._check.update(data)
        return data

    def finish(self) -> str:
        """The ETag (hex MD5) of the body read (checked, if no read saw its end)."""
        self._verify()
        return self.md5.hexdigest()

    def _verify(self) -> None:
        if self._verified:
            return
        self._verified = True
        signed = self.sha256 is not None and not self.chunked
        if signed and self.sha256 is not None and self.sha256.hexdigest() != self.payload_hash:
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                400,
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        crc = self.trailers.get("x-amz-checksum-crc32", self._crc32_header)
        if crc is not None and crc != base64.b64encode(self.crc32.to_bytes(4, "big")).decode():
            raise bad_digest("x-amz-checksum-crc32")
        md5 = self._content_md5
        if md5 is not None and md5 != base64.b64encode(self.md5.digest()).decode():
            raise bad_digest("Content-MD5")
        if self._check is not None:
            self._check.verify(self.trailers)
