"""``NodeClient``: the HTTP client of a storage node's chunk endpoints.

Used by the client library (send and fetch chunks), by the API (ask nodes what they hold,
proxy chunks) and by nodes (forward replicas). Every call carries a capability minted by the
API (or by a primary node for replica writes). It checks nothing about the bytes it carries:
callers verify hashes at their trust boundary. Must not import ``aiohttp.web``.

Deadlines: a chunk request gets ``TransferDeadline.for_bytes`` of the bytes it carries or asks
for (a hung node accepts connections and then never answers, so no request may wait on it
for the session's fixed read timeout), doubled for a write the node forwards to replicas
before it answers (it receives the bytes, then sends them on). A caller's ``timeout`` only
ever shortens it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from dfs import protocol
from dfs.errors import Unavailable
from dfs.transport.http import (
    ChunkPayload,
    FilePayload,
    FileSlice,
    Part,
    next_piece,
    request,
    request_json,
    widen_socket_reads,
)

HAS_CHUNKS_ENTRY_BYTES = 80
"""About what one chunk id costs in a has-chunks request and answer (its deadline's bytes)."""
RecordFn = Callable[[int, int, bytes], Awaitable[None]]
"""Called per /get-chunks record as it arrives: (position asked, status, bytes or b"")."""
ReadBatch = dict[str, Any]
"""A read batch of a batched /download-plans answer: node_id, url, tenant, chunk_ids, cap."""


def _timeout(deadline: float, timeout: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=deadline if timeout is None else min(deadline, timeout))


class _Records:
    """The records of a /get-chunks answer sliced out of the blocks the stream has
    (``readany``) rather than two ``readexactly`` per record: a restore reads thousands of
    small records, and each ``readexactly`` is several Python calls and a join."""

    def __init__(self, stream: aiohttp.StreamReader) -> None:
        self._stream = stream
        self._block = b""  # the last block read, and how much of it was taken
        self._pos = 0

    def take_now(self, n: int) -> bytes | None:
        """The next ``n`` bytes when the block at hand holds them (no await), else None."""
        end = self._pos + n
        if end > len(self._block):
            return None
        self._pos = end
        return self._block[end - n : end]

    async def take(self, n: int) -> bytes:
        """The next ``n`` bytes (IncompleteReadError when the answer ends first)."""
        end = self._pos + n
        if end <= len(self._block):  # the usual case: one slice of the block at hand
            self._pos = end
            return self._block[end - n : end]
        pieces = [self._block[self._pos :]]
        got = len(pieces[0])
        while True:
            block = await self._stream.readany()
            if not block:
                raise asyncio.IncompleteReadError(b"".join(pieces), n)
            if got + len(block) >= n:
                self._block, self._pos = block, n - got
                pieces.append(block[: self._pos])
                return b"".join(pieces)
            pieces.append(block)
            got += len(block)


def _body_payload(body: bytes | Sequence[Part]) -> aiohttp.payload.Payload:
    """A body in memory as ``ChunkPayload``; one with file slices as ``FilePayload``."""
    if isinstance(body, bytes):
        return ChunkPayload(body)
    parts = list(body)
    in_memory = [p for p in parts if not isinstance(p, FileSlice)]
    return ChunkPayload(in_memory) if len(in_memory) == len(parts) else FilePayload(parts)


class NodeClient:
    def __init__(
        self, session: aiohttp.ClientSession, deadline: protocol.TransferDeadline | None = None
    ) -> None:
        self._session = session
        self.deadline = deadline or protocol.TransferDeadline()

    def write_deadline(self, size: int, *, forwards: bool) -> float:
        """Seconds a write of ``size`` bytes may take (a primary forwarding: twice)."""
        return self.deadline.for_bytes(size) * (2 if forwards else 1)

    async def close(self) -> None:
        await self._session.close()

    async def _put(
        self,
        node_url: str,
        chunk_id: str,
        data: bytes | bytearray | memoryview | FileSlice | Sequence[bytes | bytearray | memoryview],
        headers: dict[str, str],
        timeout: float | None,
    ) -> dict[str, Any]:
        body = FilePayload(data) if isinstance(data, FileSlice) else ChunkPayload(data)
        size = body.size or 0
        deadline = self.write_deadline(size, forwards=bool(headers.get(protocol.FORWARD_TO)))
        result: dict[str, Any] = await request_json(
            self._session,
            "PUT",
            f"{node_url}{protocol.STORE_CHUNK}",
            params={"chunk_id": chunk_id},
            data=body,
            headers=headers,
            timeout=_timeout(deadline, timeout),
        )
        return result

    async def put_chunk(
        self,
        node_url: str,
        chunk_id: str,
        data: bytes | bytearray | memoryview | FileSlice,
        *,
        cap: str,
        file_id: str,
        forward: str = "",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Store an upload's chunk on ``node_url``, which forwards it to the nodes in
        ``forward`` (a FORWARD_TO header value) before answering.

        Returns the node's JSON answer: ``{"chunk_id", "node_id", "size", "replicas",
        "receipt"}``.
        """
        headers = {protocol.CAPABILITY: cap, protocol.UPLOAD: file_id}
        if forward:
            headers[protocol.FORWARD_TO] = forward
        return await self._put(node_url, chunk_id, data, headers, timeout)

    async def replicate_chunk(
        self,
        node_url: str,
        chunk_id: str,
        data: bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview],
        *,
        cap: str,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """A replica write from a primary node (never fanned out again)."""
        headers = {protocol.CAPABILITY: cap, protocol.FORWARDED: "1"}
        return await self._put(node_url, chunk_id, data, headers, timeout)

    async def store_chunks(
        self,
        node_url: str,
        body: bytes | Sequence[Part],
        headers: dict[str, str],
        *,
        forward: str = "",
        forwarded: bool = False,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """POST a ``protocol.pack_chunks`` body (or its ``pack_chunks_parts``, sent one after
        the other without joining; chunks may be ``FileSlice`` parts) of small chunks (an upload's, forwarded to
        the nodes in ``forward``; or, with ``forwarded``, a primary's replica writes) with
        ``headers`` from ``protocol.batch_headers`` (its capability and what that binds).
        Returns one answer per chunk, in order: ``{"chunk_id", "receipt", "replicas"}``."""
        headers = dict(headers)
        if forward:
            headers[protocol.FORWARD_TO] = forward
        if forwarded:
            headers[protocol.FORWARDED] = "1"
        payload = _body_payload(body)
        deadline = self.write_deadline(payload.size or 0, forwards=bool(forward))
        answer: dict[str, Any] = await request_json(
            self._session,
            "POST",
            f"{node_url}{protocol.STORE_CHUNKS}",
            data=payload,
            headers=headers,
            timeout=_timeout(deadline, timeout),
        )
        chunks: list[dict[str, Any]] = answer["chunks"]
        return chunks

    async def get_chunk(
        self, node_url: str, chunk_id: str, *, cap: str, size: int | None = None
    ) -> list[bytes]:
        """The chunk's bytes (unverified), in the pieces they arrived in: a caller hashes and
        writes them as they are, so the body is never joined (a copy of every byte read);
        ``size`` (if known) sets the deadline, otherwise the largest chunk's."""
        deadline = self.deadline.for_bytes(protocol.MAX_CHUNK_SIZE if size is None else size)
        async with request(
            self._session,
            "GET",
            f"{node_url}{protocol.GET_CHUNK}",
            params={"chunk_id": chunk_id},
            headers={protocol.CAPABILITY: cap},
            timeout=_timeout(deadline, None),
        ) as resp:
            # 1 MiB receives for the rest of the body (and this connection's later answers)
            widen_socket_reads(resp.connection and resp.connection.transport)
            pieces: list[bytes] = []
            # a body cut short raises ClientPayloadError, which ``request`` reports
            while piece := await next_piece(resp.content):
                pieces.append(piece)
            return pieces

    async def get_chunks(
        self, node_url: str, entries: Sequence[tuple[str, str, int]], on_record: RecordFn
    ) -> None:
        """POST /get-chunks for ``entries`` (chunk id, ``get`` capability, expected size);
        ``on_record`` gets each record as it arrives, in order (the bytes unverified). The
        deadline is that of all the bytes asked for. Unavailable when the answer is cut
        short or a record is not the chunk asked for at its place."""
        body = {"chunks": [{"chunk_id": c, "cap": cap} for c, cap, _size in entries]}
        asked = [(c, size) for c, _cap, size in entries]
        await self._read_records(node_url, body, {}, asked, on_record)

    async def get_chunk_batch(
        self,
        node_url: str,
        batch: ReadBatch,
        want: Sequence[tuple[int, int]],
        on_record: RecordFn,
    ) -> None:
        """POST /get-chunks for the chunks at positions ``want`` ((position, expected size),
        in the order to serve them) of a read batch (``{"chunk_ids", "cap", "tenant"}`` of a
        batched ``/download-plans`` answer: its one ``get-batch`` capability travels in the
        headers); ``on_record`` as for ``get_chunks``, ``n`` counting the records."""
        ids: list[str] = batch["chunk_ids"]
        body: dict[str, Any] = {"chunk_ids": ids}
        if len(want) != len(ids) or any(pos != n for n, (pos, _s) in enumerate(want)):
            body["want"] = [pos for pos, _size in want]
        headers = protocol.read_batch_headers(str(batch["cap"]), ids, str(batch["tenant"]))
        asked = [(ids[pos], size) for pos, size in want]
        await self._read_records(node_url, body, headers, asked, on_record)

    async def _read_records(
        self,
        node_url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        asked: Sequence[tuple[str, int]],
        on_record: RecordFn,
    ) -> None:
        total = sum(size for _c, size in asked)
        deadline = self.deadline.for_bytes(total + len(asked) * protocol.RECORD_HEADER.size)
        url = f"{node_url}{protocol.GET_CHUNKS}"
        async with request(
            self._session, "POST", url, json=body, headers=headers, timeout=_timeout(deadline, None)
        ) as resp:
            widen_socket_reads(resp.connection and resp.connection.transport)
            records = _Records(resp.content)
            try:
                header_size = protocol.RECORD_HEADER.size
                for n, (chunk_id, _size) in enumerate(asked):
                    header = records.take_now(header_size) or await records.take(header_size)
                    got, status, size = protocol.read_record_header(header)
                    if got != chunk_id or size > protocol.MAX_CHUNK_SIZE:
                        raise Unavailable(f"POST {url}: record {n} is not the chunk asked for")
                    data = (records.take_now(size) or await records.take(size)) if size else b""
                    await on_record(n, status, data)
            except asyncio.IncompleteReadError:
                raise Unavailable(f"POST {url}: answer cut short") from None

    async def has_chunks(
        self,
        node_url: str,
        chunk_ids: Sequence[str],
        *,
        cap: str,
        verify: Mapping[str, int] | None = None,
    ) -> set[str]:
        """The subset of ``chunk_ids`` the node holds (asked in batches of the bound). With
        ``verify`` (the chunks' sizes), only those whose copy the node reads back intact,
        in smaller batches, each given the time its bytes take to read."""
        present: set[str] = set()
        step = protocol.MAX_HAS_CHUNKS if verify is None else protocol.MAX_VERIFY_CHUNKS
        for i in range(0, len(chunk_ids), step):
            batch = list(chunk_ids[i : i + step])
            size = len(batch) * HAS_CHUNKS_ENTRY_BYTES
            ask: dict[str, Any] = {"chunk_ids": batch}
            if verify is not None:
                ask["verify"] = True
                size += sum(verify.get(c, 0) for c in batch)
            body = await request_json(
                self._session,
                "POST",
                f"{node_url}{protocol.HAS_CHUNKS}",
                json=ask,
                headers={protocol.CAPABILITY: cap},
                timeout=_timeout(self.deadline.for_bytes(size), None),
            )
            present.update(str(c) for c in body.get("present", []))
        return present

    async def status(
        self, node_url: str, *, cap: str, after: int = 0, timeout: float | None = None
    ) -> dict[str, Any]:
        """The node's /status; ``after``: the background-replication journal position the
        caller already read."""
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        result: dict[str, Any] = await request_json(
            self._session,
            "GET",
            f"{node_url}{protocol.NODE_STATUS}",
            headers={protocol.CAPABILITY: cap},
            params={"after": str(after)},
            **kwargs,
        )
        return result

    async def list_chunks(
        self, node_url: str, *, cap: str, after: str = "", limit: int = 1000
    ) -> tuple[list[tuple[str, float]], str | None]:
        """A page of the chunk ids a node stores (ascending, after ``after``), each with its
        age in seconds, and the ``after`` of the next page (None at the end)."""
        body = await request_json(
            self._session,
            "GET",
            f"{node_url}{protocol.LIST_CHUNKS}",
            headers={protocol.CAPABILITY: cap},
            params={"after": after, "limit": str(limit)},
        )
        page = [(str(c), float(age)) for c, age in body.get("chunks", [])]
        nxt = body.get("next")
        return page, (str(nxt) if nxt else None)

    async def delete_chunk(
        self, node_url: str, chunk_id: str, *, cap: str, min_age: float = 0.0
    ) -> bool:
        """Delete a copy unless it was written or re-sent in the last ``min_age`` seconds
        (bound by ``cap``: ``protocol.delete_cap_extra``)."""
        body = await request_json(
            self._session,
            "POST",
            f"{node_url}{protocol.DELETE_CHUNK}",
            params={"chunk_id": chunk_id, "min_age": protocol.delete_cap_extra(min_age)},
            headers={protocol.CAPABILITY: cap},
        )
        return bool(body.get("deleted"))

    async def copy_chunk(
        self,
        node_url: str,
        chunk_id: str,
        target_id: str,
        target_url: str,
        *,
        cap: str,
        timeout: float | None = None,
    ) -> None:
        """Have the node at ``node_url`` send its verified copy to the target node."""
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        await request_json(
            self._session,
            "POST",
            f"{node_url}{protocol.COPY_CHUNK}",
            params={"chunk_id": chunk_id},
            json={"target_id": target_id, "target_url": target_url},
            headers={protocol.CAPABILITY: cap},
            **kwargs,
        )

    async def quarantined(self, node_url: str, *, cap: str) -> list[str]:
        body = await request_json(
            self._session,
            "GET",
            f"{node_url}{protocol.QUARANTINED}",
            headers={protocol.CAPABILITY: cap},
        )
        return [str(c) for c in body.get("chunk_ids", [])]
