"""What a node's data directory holds, read by the tests from outside the node (read-only).

A node (``dfs.chunkstore.pack.PackChunkStore``) keeps a large chunk as a file
(``chunks/ab/<id>``, or ``chunks/ab/cd/<id>`` in a store of layout 2:
``dfs.chunkstore.fan_out``) and a small one as a record in a pack file (``chunks/packs/``).
``held`` replays the packs as the node does on open (a tombstone kills the record it names,
a later record of a chunk wins; a record whose CRC fails is not a copy) and adds the files:
the copies a node holds on disk now. ``flip_byte`` damages one copy in place, as a bad disk
would, wherever it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from dfs.chunkstore import record
from dfs.chunkstore.fan_out import is_chunk_name, read_fan_out
from dfs.chunkstore.record import HEADER_SIZE, KIND_TOMBSTONE


def node_dir(base: Path, node: int) -> Path:
    return base / f"node{node}"


def packs_dir(base: Path, node: int) -> Path:
    return node_dir(base, node) / "chunks" / "packs"


def pack_files(base: Path, node: int) -> list[Path]:
    return sorted(packs_dir(base, node).glob("pack-*.pack"))


def chunk_file(base: Path, node: int, chunk_id: str) -> Path:
    """Where ``node`` keeps ``chunk_id`` as a file, in its store's fan-out layout."""
    chunks = node_dir(base, node) / "chunks"
    return Path(read_fan_out(os.fspath(chunks)).path(chunk_id))


def chunk_files(chunks: Path) -> list[Path]:
    """Every chunk file under a store's ``chunks/`` folder, whatever its layout."""
    return [p for p in chunks.rglob("*") if is_chunk_name(p.name) and p.is_file()]


def _headers(data: bytes) -> list[tuple[int, record.Header]]:
    """Every record with a good header, in order, whether its payload checks or not."""
    out = []
    pos = 0
    while (head := record.decode_header(data, pos)) is not None:
        if pos + head.record_length > len(data):
            break
        out.append((pos, head))
        pos += head.record_length
    return out


def _records(packs: list[Path], rotten: bool) -> dict[str, tuple[Path, int, bytes]]:
    """The live chunk records of these packs: id -> (pack, payload offset, payload); with
    ``rotten``, records whose payload fails its CRC too (a damaged copy)."""
    killed: set[tuple[int, int]] = set()
    found: list[tuple[int, int, str, Path, bytes]] = []
    for path in packs:
        seq = int(path.stem.split("-")[1])
        data = path.read_bytes()
        for off, head in _headers(data) if rotten else record.scan(data).records:
            payload = data[off + HEADER_SIZE : off + head.record_length]
            if head.kind == KIND_TOMBSTONE:
                killed.add(record.tombstone_target(payload))
            else:
                found.append((seq, off, head.chunk_id, path, payload))
    return {
        cid: (path, off + HEADER_SIZE, p)
        for seq, off, cid, path, p in found
        if (seq, off) not in killed
    }


def _packed(base: Path, node: int, rotten: bool = False) -> dict[str, tuple[Path, int, bytes]]:
    """``_records`` of a node's packs, re-read if the node deleted a pack meanwhile."""
    for _ in range(20):
        try:
            return _records(pack_files(base, node), rotten)
        except FileNotFoundError:
            continue  # compacted while we read
    raise AssertionError(f"node{node}'s packs kept changing")


def held(base: Path, node: int, rotten: bool = False) -> dict[str, bytes]:
    """Every chunk copy ``node`` holds on disk now: files and live pack records (with
    ``rotten``, records whose CRC fails too: a damaged copy is still a copy)."""
    out = {cid: payload for cid, (_, _, payload) in _packed(base, node, rotten).items()}
    for path in chunk_files(node_dir(base, node) / "chunks"):
        try:
            out[path.name] = path.read_bytes()
        except FileNotFoundError:
            continue
    return out


def flip_byte(
    base: Path, node: int, chunk_id: str, at: int | None = None, mask: int = 0x01
) -> None:
    """Damage the node's copy of a chunk in place (byte ``at``, its middle by default)."""
    path = chunk_file(base, node, chunk_id)
    start = 0
    if path.exists():
        raw = bytearray(path.read_bytes())
        size = len(raw)
    else:
        path, start, payload = _packed(base, node)[chunk_id]
        raw = bytearray(path.read_bytes())
        size = len(payload)
    raw[start + (size // 2 if at is None else at)] ^= mask
    path.write_bytes(bytes(raw))
