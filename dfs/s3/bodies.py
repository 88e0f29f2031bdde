"""Request bodies of PutObject as the chunker reads them: plain, or ``aws-chunked``.

``BodyReader.read(n)`` hands ``dfs.api.ingest`` the object's bytes while computing their
MD5 (the ETag of a single PUT) and their SHA-256 off the event loop, on two digest threads
that run beside each other and beside the chunker's thread (hashlib releases the GIL, so
the cores all work: ``_Digests``): the SHA-256 is checked against ``x-amz-content-sha256``
before the object is linked when the client signed the payload, and in every case the
stored file's whole-file SHA-256 (``sha256_hex``, given to ``ingest`` so that the body is
hashed once, not twice). An ``aws-chunked`` body is decoded from its chunk framing and its
decoded length checked against ``x-amz-decoded-content-length``; a trailing
``x-amz-checksum-crc32`` is verified when present (CRC32 is computed only when a header
declares one or a trailer may carry one). Every trailing header must be one the request
declared in ``x-amz-trailer``: any other is refused (``MalformedTrailerError``, as S3
answers), never ignored, so a checksum the client sent is never left unchecked.

The framings (``x-amz-content-sha256``):

| value | chunks | trailer |
|---|---|---|
| ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` | unsigned, streamed as they arrive | unsigned |
| ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` | each signed (``dfs.s3.sigv4.ChunkChain``) | none |
| ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` | each signed | signed (``x-amz-trailer-signature``) |

A signed chunk is read whole and its signature checked before any of its bytes is handed
on, so a forged or reordered chunk fails the request (``SignatureDoesNotMatch``) before
``dfs.api.ingest`` can commit anything; a chunk may hold at most ``MAX_SIGNED_CHUNK`` bytes,
which bounds the memory of a request (clients send 64 KiB to 1 MiB).

Every route reads its body through here: ``request_body`` for the streamed ones (PutObject,
UploadPart), ``read_small`` for the small documents (XML configurations, DeleteObjects,
CompleteMultipartUpload's part list), so that each body is decoded, bounded in time
(``dfs.server.StreamDeadline``) and checked against what the client signed or declared in
one place.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from aiohttp import web
from zlib_ng import zlib_ng

from dfs.s3.checksums import Checksums, is_digest, malformed_trailer
from dfs.s3.context import CALLER, body_slot, hold
from dfs.s3.errors import S3Error, not_implemented, signature_mismatch
from dfs.s3.sigv4 import (
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED,
    Caller,
    ChunkChain,
)
from dfs.server import StreamDeadline

log = logging.getLogger("dfs.s3")
ReadFn = Callable[[int], Awaitable[bytes]]
READ_BLOCK = 1 << 20
MAX_CHUNK_HEADER = 4096
_CHUNK_SIZE = re.compile(r"[0-9a-fA-F]{1,16}")
MAX_SIGNED_CHUNK = 8 << 20
MAX_TRAILER_LINES = 16
MAX_TRAILING_BLANKS = 4  # CR and LF bytes taken after the trailer's end (a client's extra CRLF)
_STREAMING = frozenset({STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER})
_TRAILER_SIGNATURE = "x-amz-trailer-signature"
DIGEST_BATCH = 4 << 20
"""Bytes of body handed to the digest threads at once: a hop per socket read (tens of KiB)
would cost more than it saves. The event loop waits on a batch only if the threads are
still hashing the one before when the next is full (each wait wakes the loop)."""
INLINE_DIGEST = 64 << 10
"""A last batch up to this size is hashed on the event loop (cheaper than a hop)."""
_DIGEST_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dfs-s3-digest")


class BodyCheck(Protocol):
    """More checks of the decoded body (``dfs.s3.checksums``): fed every block, then asked
    at the body's end with the trailers."""

    declared: dict[str, str | None]  # the algorithms it computes itself

    def update(self, data: bytes) -> None: ...
    def verify(self, trailers: Mapping[str, str]) -> None: ...


class _Crc32:
    """``zlib_ng.crc32`` as a hash object (``update``), so it runs with the other digests."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib_ng.crc32(data, self.value)


def _feed(hashes: Sequence[Any], pieces: Sequence[bytes]) -> None:
    for data in pieces:
        for h in hashes:
            h.update(data)


class _Digests:
    """The body's MD5 on one digest thread and its other digests (SHA-256, CRC32, the
    declared checksums) on another, beside each other and the chunker: the bytes are
    batched (``DIGEST_BATCH``) and each batch waits for the one before, so every digest
    sees the bytes in order and at most two batches per request are held (memory bounded).
    """

    def __init__(self, md5: Any, others: Sequence[Any]) -> None:
        self._groups = ((md5,), tuple(others))
        self._batch: list[bytes] = []
        self._batched = 0
        self._jobs: tuple[Future[None], ...] = ()

    async def add(self, data: bytes) -> None:
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= DIGEST_BATCH:
            await self._wait()
            self._submit()

    async def settle(self) -> None:
        """Every byte added is hashed (the body's end was read)."""
        await self._wait()
        if self._batched > INLINE_DIGEST:
            self._submit()
            await self._wait()
        self.settle_now()

    def settle_now(self) -> None:
        """As ``settle``, blocking: for a check asked before any read saw the end."""
        self._reap()
        for group in self._groups:
            _feed(group, self._batch)
        self._batch, self._batched = [], 0

    def _reap(self) -> None:
        """The jobs' outcomes (waiting for them: call when they are done, or to block)."""
        jobs, self._jobs = self._jobs, ()
        for job in jobs:
            job.result()

    async def _wait(self) -> None:
        """The jobs in flight are done; a wait wakes the event loop when they end, so
        none is made for jobs done already (the threads usually keep up)."""
        if not all(j.done() for j in self._jobs):
            await asyncio.gather(*(asyncio.wrap_future(j) for j in self._jobs))
        self._reap()

    def _submit(self) -> None:
        pieces, self._batch, self._batched = self._batch, [], 0
        self._jobs = tuple(_DIGEST_POOL.submit(_feed, g, pieces) for g in self._groups if g)


def bad_digest(what: str) -> S3Error:
    return S3Error("BadDigest", 400, f"the {what} you specified did not match the body")


def incomplete(message: str) -> S3Error:
    return S3Error("IncompleteBody", 400, message)


def _decoded_length(value: str | None, required: bool) -> int | None:
    if value is None:
        if required:
            raise S3Error("MissingContentLength", 411, "x-amz-decoded-content-length is required")
        return None
    if not value.isascii() or not value.isdigit():
        raise S3Error("InvalidArgument", 400, "x-amz-decoded-content-length must be a number")
    return int(value)


def _content_md5(value: str | None) -> str | None:
    """``Content-MD5`` if it is the base64 of an MD5 (else S3's InvalidDigest, before the
    body is read, rather than a BadDigest once it was)."""
    if value is None:
        return None
    if not is_digest(value, 16):
        raise S3Error("InvalidDigest", 400, "The Content-MD5 you specified was invalid.")
    return value


class BodyReader:
    """The decoded body. What the client declared of it (signed SHA-256, Content-MD5, a CRC32
    header or trailer, its decoded length) is checked as the end of the body is read, and
    each signed chunk before its bytes are used, so that ``dfs.api.ingest`` fails before it
    commits a file of bytes the client did not send. ``chain`` is the caller's
    (``Caller.chain``): a chunk-signed body without one answers 501."""

    def __init__(
        self,
        read: ReadFn,
        payload_hash: str,
        encoding: str,
        content_md5: str | None = None,
        crc32_header: str | None = None,
        *,
        chain: ChunkChain | None = None,
        decoded_length: str | None = None,
        check: BodyCheck | None = None,
        trailer: str = "",
    ) -> None:
        self._read = read
        # the trailing headers the request declared (``x-amz-trailer``): the only ones taken
        self._trailer_names = {n.strip().lower() for n in trailer.split(",") if n.strip()}
        self._check = check
        self._content_md5 = _content_md5(content_md5)
        self._crc32_header = crc32_header
        self._verified = False
        # the framing read ahead: bytes from ``_pos`` on are unread. An offset, not a
        # shrinking bytes object: slicing off what each chunk used copied the rest of the
        # buffer, so a body of many small chunks cost time quadratic in its length
        self._buf = bytearray()
        self._pos = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.signed_payload = len(payload_hash) == 64
        self.payload_hash = payload_hash.lower()
        self.chunked = "aws-chunked" in encoding or payload_hash in _STREAMING
        self._crc = crc32_header is not None or self.chunked
        self._chain = (
            chain if payload_hash in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER) else None
        )
        if payload_hash.startswith("STREAMING-") and (
            payload_hash not in _STREAMING
            or (payload_hash != STREAMING_UNSIGNED_TRAILER and self._chain is None)
        ):
            raise not_implemented(f"the {payload_hash} body encoding here")
        if not self.chunked and payload_hash != UNSIGNED and not self.signed_payload:
            raise S3Error("InvalidArgument", 400, f"x-amz-content-sha256 {payload_hash!r}")
        if self.chunked and self.signed_payload:  # it would sign the framing: unchecked
            raise S3Error("InvalidArgument", 400, "an aws-chunked body needs a STREAMING- hash")
        self._signed_trailer = payload_hash == STREAMING_SIGNED_TRAILER
        log.debug("body: %s", payload_hash if payload_hash in _STREAMING else "plain")
        # every STREAMING- body declares it (S3 refuses one that does not, unsigned too)
        self._declared = _decoded_length(decoded_length, payload_hash in _STREAMING)
        self._decoded = 0  # bytes the chunk headers announced so far
        self._left = 0  # bytes left of the current unsigned aws-chunked chunk
        self._ready = memoryview(b"")  # a signed chunk's verified bytes not yet handed on
        self._done = False
        self._blanks = 0  # line-end bytes read after the trailer
        self._crc32 = _Crc32()
        others: list[Any] = [self.sha256]
        others += [self._crc32] if self._crc else []
        others += [check] if check is not None else []
        self._digests = _Digests(self.md5, others)
        self.trailers: dict[str, str] = {}

    @property
    def declared(self) -> int | None:
        """The decoded length the request declared (``x-amz-decoded-content-length``)."""
        return self._declared

    @property
    def crc32(self) -> int:
        return self._crc32.value

    def _unread(self) -> int:
        return len(self._buf) - self._pos

    def _consume(self, n: int) -> bytes:
        """Up to ``n`` unread bytes, taken."""
        with memoryview(self._buf) as view:  # one copy (a bytearray slice is two)
            data = view[self._pos : self._pos + n].tobytes()
        self._pos += len(data)
        return data

    async def _fill(self, n: int) -> bool:
        """At least ``n`` bytes unread (False: the body ended first)."""
        while self._unread() < n:
            more = await self._read(READ_BLOCK)
            if not more:
                return False
            if self._pos > len(self._buf) // 2:  # what was used goes, now and then
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += more
        return True

    async def _line(self, eof_ok: bool = False) -> str | None:
        """The next line of framing (``\\r\\n`` or a bare ``\\n``: clients differ in their
        trailers); None at the body's end when ``eof_ok``."""
        while (end := self._buf.find(b"\n", self._pos)) < 0:
            unread = self._unread()
            if unread > MAX_CHUNK_HEADER or not await self._fill(unread + 1):
                if eof_ok and not unread:
                    return None
                raise incomplete("malformed aws-chunked body")
        if end - self._pos > MAX_CHUNK_HEADER:
            raise incomplete("malformed aws-chunked body")
        line = self._consume(end - self._pos)
        self._pos += 1  # the newline
        return line.removesuffix(b"\r").decode("ascii", "replace")

    async def _take(self, n: int) -> bytes:
        """Exactly ``n`` bytes of the body (a signed chunk's data)."""
        parts = [self._consume(n)]
        got = len(parts[0])
        while got < n:
            more = await self._read(min(READ_BLOCK, n - got))
            if not more:
                raise incomplete("the aws-chunked body ended early")
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    async def _chunk_end(self) -> None:
        if not await self._fill(2) or self._consume(2) != b"\r\n":
            raise incomplete("malformed aws-chunked chunk end")

    async def _next_chunk_header(self) -> None:
        size_text, _, ext = (await self._line() or "").partition(";")
        if not _CHUNK_SIZE.fullmatch(size_text.strip()):  # int() took "0x5", "+5", "-3"
            raise incomplete("malformed aws-chunked chunk size")
        size = int(size_text.strip(), 16)
        self._decoded += size
        if self._declared is not None and self._decoded > self._declared:
            raise incomplete("the body is longer than its x-amz-decoded-content-length")
        if self._chain is not None:
            await self._signed_chunk(size, ext)
        else:
            self._left = size
        if size == 0:
            await self._read_trailers()
            if self._declared is not None and self._decoded != self._declared:
                raise incomplete("the body is shorter than its x-amz-decoded-content-length")
            await self._body_end()
            self._done = True

    async def _signed_chunk(self, size: int, ext: str) -> None:
        """Read a whole signed chunk and check its signature before its bytes are used."""
        name, _, signature = ext.strip().partition("=")
        if name != "chunk-signature" or not signature:
            raise signature_mismatch()
        if size > MAX_SIGNED_CHUNK:
            raise S3Error("InvalidArgument", 400, f"signed chunks hold at most {MAX_SIGNED_CHUNK}")
        data = await self._take(size) if size else b""
        if size:
            await self._chunk_end()
        assert self._chain is not None
        self._chain.check_chunk(signature, hashlib.sha256(data).hexdigest())
        self._ready = memoryview(data)  # handed on by slices of it: no copy of the rest

    async def _body_end(self) -> None:
        """Nothing follows the trailer but a line end or two (IncompleteBody otherwise):
        bytes sent after the final chunk were dropped, the object stored without them."""
        while await self._fill(1):
            extra = self._consume(MAX_TRAILING_BLANKS + 1)
            self._blanks += len(extra)
            if extra.strip(b"\r\n") or self._blanks > MAX_TRAILING_BLANKS:
                raise incomplete("bytes follow the final chunk of the aws-chunked body")

    async def _read_trailers(self) -> None:
        """The trailing headers after the final chunk, up to an empty line or the end;
        the signed form's ``x-amz-trailer-signature`` is checked over the others."""
        canonical, signature = b"", None
        for _ in range(MAX_TRAILER_LINES):
            line = await self._line(eof_ok=True)
            if not line:
                break
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == _TRAILER_SIGNATURE:
                signature = value
                continue
            self.trailers[name] = value
            canonical += f"{name}:{value}\n".encode()
        else:
            raise incomplete("too many trailing headers")
        if self._signed_trailer:
            assert self._chain is not None
            if signature is None:
                raise signature_mismatch()
            self._chain.check_trailer(signature, canonical)
        if not self._trailer_names.issuperset(self.trailers):
            # S3 refuses a trailer it was not told of; ignored, a checksum sent there (one
            # the client believes verified) went unchecked
            log.info("undeclared trailers: %s", sorted(set(self.trailers) - self._trailer_names))
            raise malformed_trailer()

    async def _read_chunked(self, n: int) -> bytes:
        while not self._done and self._left == 0 and not self._ready:
            await self._next_chunk_header()
        if self._ready:
            data, self._ready = self._ready[:n].tobytes(), self._ready[n:]
            return data
        if self._done:
            return b""
        if not self._unread() and not await self._fill(1):
            raise incomplete("the aws-chunked body ended early")
        data = self._consume(min(n, self._left))
        self._left -= len(data)
        if self._left == 0:
            await self._chunk_end()
        return data

    async def read(self, n: int) -> bytes:
        data = await self._read_chunked(n) if self.chunked else await self._read(min(n, READ_BLOCK))
        if not data:
            await self._digests.settle()
            self._verify()
            return data
        await self._digests.add(data)
        return data

    def sha256_hex(self) -> str:
        """The SHA-256 of the decoded body read so far (all of it, once ``read`` returned
        the end: the stored file's whole-file hash)."""
        self._digests.settle_now()
        return self.sha256.hexdigest()

    def finish(self) -> str:
        """The ETag (hex MD5) of the body read (checked, if no read saw its end)."""
        self._verify()
        return self.md5.hexdigest()

    def _verify(self) -> None:
        if self._verified:  # set once every check passed: a failed check fails again
            return
        self._digests.settle_now()
        if self.chunked and not self._done:
            raise incomplete("the aws-chunked body ended before its final chunk")
        if self.signed_payload and self.sha256.hexdigest() != self.payload_hash:
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
        self._verified = True


def declared_length(request: web.Request, body: BodyReader) -> int | None:
    """The body's length as the request declares it: an aws-chunked body's decoded length
    (``x-amz-decoded-content-length``), any other's Content-Length. The decoded length of a
    body that is not aws-chunked describes nothing: taken for it, a 0 stored a 100-byte
    body as an empty object."""
    return body.declared if body.chunked else request.content_length


def request_body(
    request: web.Request, check: BodyCheck | None = None, *, body_crc32: bool = True
) -> BodyReader:
    """The request's decoded body, read within the server's deadlines, checked against the
    caller's signed payload hash and the body headers it sent (``check``: more checks;
    ``body_crc32=False``: an ``x-amz-checksum-crc32`` header is not the body's)."""
    deadline = StreamDeadline(request)  # slow clients cannot pin the server

    async def read_raw(n: int) -> bytes:
        # bytes buffered already need no deadline (a timer armed and cancelled per read)
        if data := request.content.read_nowait(n):
            deadline.took(len(data))
            return data
        return await deadline.read(request.content.read, n)

    who: Caller | None = request.get(CALLER)
    h = request.headers
    return BodyReader(
        read_raw,
        who.payload_hash if who is not None else UNSIGNED,
        h.get("Content-Encoding", ""),
        content_md5=h.get("Content-MD5"),
        # a check computing CRC32 itself already verifies the header: not computed twice
        crc32_header=None
        if (check and "crc32" in check.declared) or not body_crc32
        else h.get("x-amz-checksum-crc32"),
        chain=who.chain if who is not None else None,
        decoded_length=h.get("x-amz-decoded-content-length"),
        check=check,
        trailer=h.get("x-amz-trailer", ""),
    )


async def read_small(
    request: web.Request,
    limit: int,
    too_large: S3Error,
    *,
    body_crc32: bool = True,
    until_answered: bool = True,
) -> bytes:
    """A whole small body (at most ``limit`` bytes decoded, else ``too_large``), checked as
    ``request_body`` checks any body before it is returned, and against every
    ``x-amz-checksum-*`` it declares in a header or trailer (``body_crc32=False``: those
    are not the body's; unchecked, a wrong SHA-256, SHA-1 or CRC32C passed where a wrong
    CRC32 was refused). Above 64 KiB it is read in one of the tenant's body slots
    (``dfs.s3.context.body_slot``), held until the request is answered; its caller parses
    it before it awaits anything, so the event loop builds one parsed tree at a time.

    ``until_answered=False``: the slot is released once the body is read, for a caller
    whose work after the parse is no XML's and may take minutes (CompleteMultipartUpload's
    assembly of the object): held through it, a tenant's few Completes kept its other big
    bodies waiting, then refused."""
    check = Checksums.from_headers(request.headers) if body_crc32 else None
    body = request_body(request, check, body_crc32=body_crc32)
    if until_answered:
        await hold(request, body_slot(request))  # above 64 KiB: a few per tenant at once
        return await _read_whole(body, limit, too_large)
    async with body_slot(request):
        return await _read_whole(body, limit, too_large)


async def _read_whole(body: BodyReader, limit: int, too_large: S3Error) -> bytes:
    raw = bytearray()
    while piece := await body.read(1 << 16):
        raw += piece
        if len(raw) > limit:
            raise too_large
    body.finish()
    return bytes(raw)
