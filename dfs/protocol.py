"""The wire contract shared by the API, the nodes and the client: paths, headers, bounds.

docs/WIRE.md documents the same names; tests and deployments depend on
them, so a path or field is never renamed once shipped. Standard library only, but for
orjson, which encodes and decodes the /store-chunks index (as every JSON body).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from dfs.errors import InvalidRequest
from dfs.ids import parse_node_id

# --- API coordinator ---------------------------------------------------------------------
INIT_UPLOAD: Final = "/init-upload"
FINALIZE_UPLOAD: Final = "/finalize-upload"
DOWNLOAD_PLAN: Final = "/download-plan"
PROXY_CHUNK_UPLOAD: Final = "/proxy-chunk-upload"
PROXY_CHUNK_DOWNLOAD: Final = "/proxy-chunk-download"
ADMIN_STATS: Final = "/admin/stats"
ADMIN_TENANTS: Final = "/admin/tenants"
ADMIN_TOKENS: Final = "/admin/tokens"
ADMIN_TOKEN: Final = "/admin/tokens/{token_id}"  # DELETE: revoke
WHOAMI: Final = "/whoami"
ACCESS_KEYS: Final = "/access-keys"  # S3 access keys: POST create, GET list
ACCESS_KEY: Final = "/access-keys/{access_key_id}"  # DELETE: revoke
NODES: Final = "/nodes"
NODE_HEARTBEAT: Final = "/nodes/heartbeat"
NODE_DEREGISTER: Final = "/nodes/deregister"
FILES: Final = "/files"
ADMIN_REPAIR: Final = "/admin/repair"
ADMIN_NODE_DRAIN: Final = "/admin/nodes/{node_id}/drain"  # POST start, GET status, DELETE cancel
# seed endpoints (dedup service) and user-facing additions, see dfs/api/routes_seed.py,
# routes_batch.py
FILE: Final = "/file/{file_id}"  # GET: the seed's metadata; DELETE: remove the file
METADATA: Final = "/metadata/{file_id}"
DOWNLOAD: Final = "/download/{file_id}"
SIGNED_DOWNLOAD: Final = "/signed-download/"
"""Prefix of the signed download URLs: ``/signed-download/{file_id}?tenant=&sig=`` (no token)."""
UPLOAD_FILE: Final = "/upload"
# the namespace (issue 13): buckets, objects by key, usage
BUCKETS: Final = "/buckets"
BUCKET: Final = "/buckets/{bucket}"
BUCKET_OBJECTS: Final = "/buckets/{bucket}/objects"  # GET: list; DELETE: a prefix
BUCKET_SEARCH: Final = "/buckets/{bucket}/search"
BUCKET_USAGE: Final = "/buckets/{bucket}/usage"
USAGE: Final = "/usage"
USAGE_HISTORY: Final = "/usage/history"
ADMIN_USAGE: Final = "/admin/usage"
OBJECTS_PREFIX: Final = "/objects/"
KEY_IN_PATH: Final = r"{key:[\s\S]+}"
"""A key in a route's path: any characters, a line break too (the ``.`` of a ``{key:.+}``
pattern matches none, so a key holding one, valid in S3 and in the namespace, was answered
aiohttp's plain 404 by every route that names it in its path)."""
OBJECT: Final = "/objects/{bucket}/" + KEY_IN_PATH  # GET/HEAD bytes, PUT link, DELETE
OBJECT_INFO: Final = "/object-info/{bucket}/" + KEY_IN_PATH  # GET the version, PATCH it
OBJECT_URL: Final = "/object-url/{bucket}/" + KEY_IN_PATH  # a signed URL
OBJECTS_COPY: Final = "/objects-copy"
OBJECTS_RESTORE: Final = "/objects-restore"
OBJECTS_LINK: Final = "/objects-link"
OBJECTS_REMOVE: Final = "/objects-remove"
# the web console (issue 15): static files, no token (every call they make carries one)
CONSOLE: Final = "/ui"
CONSOLE_FILE: Final = "/ui/{name}"
CONSOLE_VENDOR_FILE: Final = "/ui/vendor/{package}/{name}"
CHECK: Final = "/check"
ADMIN_HASHES: Final = "/admin/hashes"
INIT_UPLOADS: Final = "/init-uploads"
FINALIZE_UPLOADS: Final = "/finalize-uploads"
RESUME_UPLOAD: Final = "/resume-upload"
DOWNLOAD_PLANS: Final = "/download-plans"
# paged uploads (files of any number of chunks), see dfs/api/routes_paged.py
PAGED_UPLOAD: Final = "/paged-upload"
PAGED_UPLOAD_PAGE: Final = "/paged-upload/page"
PAGED_UPLOAD_PROVE: Final = "/paged-upload/prove"
PAGED_UPLOAD_FINALIZE: Final = "/paged-upload/finalize"
MAX_PAGE_CHUNKS: Final = 4096
"""Chunks in one page of a paged upload: a page's plan stays small, and a page stored as
one DynamoDB item (48 bytes per entry) stays far below the 400 KB item limit."""
MAX_BATCH_FILES: Final = 1000
"""Files in one init-uploads / finalize-uploads / download-plans request."""

# --- storage node ------------------------------------------------------------------------
STORE_CHUNK: Final = "/store-chunk"
STORE_CHUNKS: Final = "/store-chunks"
"""POST many small chunks in one body (``pack_chunks``) under one batch capability, checked
from the headers (``batch_headers``) before the body is read."""
GET_CHUNK: Final = "/get-chunk"
GET_CHUNKS: Final = "/get-chunks"
"""POST a list of chunk ids with a ``get`` capability each; the answer streams their bytes
(``read_record_header`` framing), in the order asked."""
HAS_CHUNKS: Final = "/has-chunks"
NODE_STATUS: Final = "/status"
DELETE_CHUNK: Final = "/delete-chunk"
COPY_CHUNK: Final = "/copy-chunk"
QUARANTINED: Final = "/quarantined"
LIST_CHUNKS: Final = "/list-chunks"
MAX_LIST_CHUNKS: Final = 10_000

# --- both --------------------------------------------------------------------------------
HEALTHZ: Final = "/healthz"
READYZ: Final = "/readyz"
METRICS: Final = "/metrics"

# Headers. A primary node forwards a chunk to the nodes listed in FORWARD_TO
# ("node_id=url,node_id=url") and marks the forwarded request with FORWARDED so that it is
# never fanned out again. CAPABILITY carries the HMAC capability the API (or, for replica
# writes, the primary) minted; UPLOAD names the file id an upload's chunk belongs to.
FORWARD_TO: Final = "X-Dfs-Forward-To"
FORWARDED: Final = "X-Dfs-Forwarded"
CAPABILITY: Final = "X-Dfs-Capability"
UPLOAD: Final = "X-Dfs-Upload"
# A /store-chunks request names what its batch capability binds, so the node checks it before
# reading the body: BATCH the SHA-256 of the ordered chunk-id list, BATCH_FILES (upload
# writes) the SHA-256 of the ordered file ids of those chunks (``list_sha256`` both).
BATCH: Final = "X-Dfs-Batch"
BATCH_FILES: Final = "X-Dfs-Batch-Files"
TENANT: Final = "X-Dfs-Tenant"
"""On a ``get-batch`` ``/get-chunks`` request: the tenant its capability was minted for."""
AUTHORIZATION: Final = "Authorization"


def forward_header(targets: Sequence[tuple[str, str]]) -> str:
    """The canonical FORWARD_TO value for (node_id, url) pairs; capabilities sign it as is."""
    return ",".join(f"{node_id}={url}" for node_id, url in targets)


def put_cap_extra(file_id: str, forward: str, *, asynchronous: bool = False) -> str:
    """What a client's put capability binds besides chunk, node and expiry. With
    ``asynchronous`` the API tells the primary to answer after its own durable copy and
    forward to the others in the background (REPLICATION_STRATEGY=async)."""
    return f"{file_id}|{forward}" + ("|async" if asynchronous else "")


def copy_cap_extra(target_id: str, target_url: str) -> str:
    """What a repair copy capability binds: the one node the copy may go to."""
    return f"{target_id}={target_url}"


def delete_cap_extra(min_age: float) -> str:
    """What a delete capability binds: the ``min_age`` query text, so that a captured one
    cannot delete a copy written or re-sent more recently than the API allowed (GC's guard
    against deleting what an upload sent again after GC chose the chunk)."""
    return f"{max(min_age, 0.0):.3f}"


# Bounds.
KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB
MAX_CHUNK_SIZE: Final = 16 * MIB
"""Largest chunk any chunker may produce and any node accepts (the body bound of PUT)."""
MIN_CHUNK_SIZE: Final = 4 * KIB
"""Smallest fixed chunk size: below it per-chunk overhead dominates and manifests explode."""
MAX_JSON_BODY: Final = 24 * MIB
"""Bound of the big JSON bodies (init-upload, finalize-upload): MAX_CHUNKS_PER_FILE chunk
entries (~95 bytes each) or receipts (~150 bytes each) fit."""
MAX_CHUNKS_PER_FILE: Final = 100_000
DEFAULT_CONCURRENCY: Final = 8
"""Chunks a client keeps in flight unless told (``Client(concurrency=)``, ``--concurrency``):
here, not in dfs.client.library, so that the CLI's option can show it without loading the
library. A download fetches ahead as many big files at once, each with a window of up to
twice as many pieces, bounded together by one byte budget linear in it
(``dfs.client.download.ByteBudget``); raising it did not speed a download up
(bench/README.md), so it is not raised with the upload's."""
DEFAULT_UPLOAD_CONCURRENCY: Final = 16
"""``dfs-client upload``'s chunks in flight unless told: a node's writes of concurrent chunks
share their journal commits, and a 1 GiB upload at RF 1 took 3.5-3.6 s at 16 against
3.8-4.2 at 8 (bench/README.md, stop 55); an upload's memory grows with it only linearly
(its chunks are sent from the file, with ``sendfile``)."""
DEFAULT_GC_GRACE: Final = 3600.0
"""The API's default DFS_GC_GRACE, seconds (dfs.config): it deletes a pending upload 2 x this
after it began (dfs.api.gc), which the client's resume journals count on (dfs.client.resume).
Here rather than in dfs.config so that the client does not import the servers' settings."""
"""Chunks in one file planned by one ``/init-upload``: ~100 GiB at the default 1 MiB average
chunk. Measured (docs/WIRE.md, "Hostile input limits"): planning a 100,000-chunk upload peaks
at ~250 MiB of API memory; a million would need about ten times that, so bigger files go
page by page (``PAGED_UPLOAD``), which has no such bound."""
MAX_HAS_CHUNKS: Final = 10_000
MAX_VERIFY_CHUNKS: Final = 16
"""Ids of a ``/has-chunks`` with ``verify``: the node reads each copy back (repair's trims,
before they delete a surplus copy), so fewer than a plain ``/has-chunks`` asks about."""
MAX_FILE_NAME: Final = 1024
MAX_ZONE: Final = 64
"""Characters of a node's zone (``DFS_NODE_ZONE``): printable text, no more."""
# A file's optional metadata from the uploader (issue 16): permission bits (mode & 0o7777)
# and a modification time in Unix seconds, kept within +-2**34 s (years ~1425 to ~2514) so
# every platform's file system and float can hold it.
MAX_FILE_MODE: Final = 0o7777
MAX_ABS_MTIME: Final = float(2**34)
MAX_EXCLUDE_NODES: Final = 64
"""Node ids in one ``/resume-upload`` ``exclude_nodes`` list (a client's failed nodes)."""


API_RETRY_SECONDS: Final = 60.0
"""Seconds a client keeps sending a request the API did not answer, once the API has answered
it (``dfs.transport.api_client``): an API restart is a pause, not a failure."""
API_RETRY_SECONDS_MAX: Final = 3600.0
"""The longest such window a client may ask for (``DFS_API_RETRY_SECONDS``)."""


# --- deadlines of chunk transfers ----------------------------------------------------------
CHUNK_DEADLINE_FLOOR: Final = 10.0
"""Seconds any one request to a node may take whatever its size (connect, headers, fsync)."""
CHUNK_MIN_RATE: Final = 256 * KIB
"""Bytes per second per request below which a chunk transfer is abandoned. Per request, not
per link: a client sends ``concurrency`` chunks at once over its uplink."""


@dataclass(frozen=True)
class TransferDeadline:
    """How long a request carrying (or asking for) ``n`` bytes may take: ``floor + n / rate``.

    A hung node accepts connections and then never answers; a fixed timeout either waits
    minutes for it or cuts off big chunks on slow links, so deadlines scale with the bytes.
    """

    floor: float = CHUNK_DEADLINE_FLOOR
    min_rate: float = CHUNK_MIN_RATE

    def __post_init__(self) -> None:
        if self.floor <= 0 or self.min_rate <= 0:
            raise InvalidRequest("deadline floor and minimum rate must be > 0")

    def for_bytes(self, n: int) -> float:
        return self.floor + max(n, 0) / self.min_rate


# --- batched chunk writes (POST /store-chunks) --------------------------------------------
MAX_FORWARD_TARGETS: Final = 8
MAX_STORE_BATCH: Final = 256
"""Chunks in one /store-chunks body (whose bytes are bounded by MAX_CHUNK_SIZE)."""
PACK_CHUNK_MAX: Final = MIB
"""Chunks up to this size of an /init-uploads plan travel in packs (one /store-chunks each)."""
PACK_MAX_CHUNKS: Final = MAX_STORE_BATCH
PACK_MAX_BYTES: Final = 8 * MIB
"""Bounds of one pack the API plans: as many chunks as a node takes in one request, and
half its body bound in bytes (the index of 256 entries is ~40 KB). Each request costs the
node a capability check, a pack append with its fsyncs and an answer whatever its size, so
a directory of small files goes in as few of them as these bounds allow (bench/README.md)."""
_INDEX_LEN = struct.Struct(">I")


def parse_forward(header: str) -> list[tuple[str, str]]:
    """Parse a FORWARD_TO value ``node_id=url,node_id=url``; capabilities sign the raw text."""
    targets = []
    for item in (t.strip() for t in header.split(",")):
        if not item:
            continue
        node_id, eq, url = item.partition("=")
        parse_node_id(node_id, "forward node id")
        if not eq or not url.startswith(("http://", "https://")) or any(c in url for c in " @?#|"):
            raise InvalidRequest(f"bad forward target {item!r}")
        targets.append((node_id, url.rstrip("/")))
    if len(targets) > MAX_FORWARD_TARGETS:
        raise InvalidRequest(f"at most {MAX_FORWARD_TARGETS} forward targets")
    return targets


def list_sha256(ids: Sequence[str]) -> str:
    """The SHA-256 of fixed-length ids (chunk ids, file ids) in order, concatenated with no
    separator: what a batch capability binds instead of one id."""
    return hashlib.sha256("".join(ids).encode()).hexdigest()


def batch_headers(
    cap: str, chunk_ids: Sequence[str], file_ids: Sequence[str] | None = None
) -> dict[str, str]:
    """The headers that carry a /store-chunks batch's capability and what it binds: the
    chunk-id list, and for an upload write (``file_ids``: one per chunk) its file ids."""
    headers = {CAPABILITY: cap, BATCH: list_sha256(chunk_ids)}
    if file_ids is not None:
        headers[BATCH_FILES] = list_sha256(file_ids)
    return headers


def pack_chunks(
    entries: Sequence[Mapping[str, Any]], payloads: Sequence[bytes | bytearray | memoryview]
) -> bytes:
    """The /store-chunks body: a 4-byte big-endian length, the JSON index
    ``{"chunks": [{"chunk_id", "size", "file_id"?}, ...]}``, then every chunk's bytes in index
    order (``file_id`` on upload writes; the capability travels in the headers)."""
    return b"".join(pack_chunks_parts(entries, payloads))


def pack_chunks_parts(
    entries: Sequence[Mapping[str, Any]], payloads: Sequence[bytes | bytearray | memoryview]
) -> list[bytes | bytearray | memoryview]:
    """``pack_chunks``'s body as its parts (the length and index, then each payload as it
    is): what a sender writes one after the other without copying the chunks into one body."""
    return [pack_index(entries, [memoryview(p).nbytes for p in payloads]), *payloads]


def pack_index(entries: Sequence[Mapping[str, Any]], sizes: Sequence[int]) -> bytes:
    """The head of a /store-chunks body (its length, then the JSON index) for chunks of
    ``sizes`` bytes, which follow it in index order: for a sender whose chunks are not in
    memory (sent from a file)."""
    index = orjson.dumps(
        {"chunks": [{**e, "size": n} for e, n in zip(entries, sizes, strict=True)]}
    )
    return _INDEX_LEN.pack(len(index)) + index


def unpack_chunks(body: bytes | bytearray) -> list[tuple[dict[str, Any], memoryview]]:
    """Split a /store-chunks body into (index entry, bytes) pairs; InvalidRequest if the
    framing is wrong (ids, and that they are those the capability binds, are the caller's
    to check)."""
    view = memoryview(body)
    if len(view) < _INDEX_LEN.size:
        raise InvalidRequest("store-chunks body is too short")
    (n,) = _INDEX_LEN.unpack_from(view)
    start = _INDEX_LEN.size + n
    if start > len(view):
        raise InvalidRequest("store-chunks index is longer than the body")
    try:
        index = orjson.loads(view[_INDEX_LEN.size : start])  # refuses nesting over 1,024 levels
    except ValueError:
        raise InvalidRequest("store-chunks index is not JSON") from None
    chunks = index.get("chunks") if isinstance(index, dict) else None
    if not isinstance(chunks, list) or not 0 < len(chunks) <= MAX_STORE_BATCH:
        raise InvalidRequest(f"store-chunks needs 1-{MAX_STORE_BATCH} chunks")
    out = []
    pos = start
    for e in chunks:
        size = e.get("size") if isinstance(e, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_CHUNK_SIZE:
            raise InvalidRequest("every store-chunks entry needs a size")
        out.append((e, view[pos : pos + size]))
        pos += size
    if pos != len(view):
        raise InvalidRequest("store-chunks sizes do not add up to the body")
    return out


# --- batched chunk reads (POST /get-chunks) -----------------------------------------------
MAX_GET_BATCH: Final = 1024
"""Chunk ids in one /get-chunks request (the answer streams, so its bytes need no bound)."""
GET_BATCH_ENTRY_BYTES: Final = 200
"""What one entry of a /get-chunks request may cost, its body bound: ``{"chunk_id", "cap"}``
is 164 bytes of compact JSON (169 with the standard library's spaces), so MAX_GET_BATCH of
them fit."""
READ_BATCH_CHUNKS: Final = 256
READ_BATCH_BYTES: Final = 4 * MIB
"""Bounds of one read batch the API plans in a batched ``/download-plans`` answer (one
``get-batch`` capability each): a slow node delays at most this much of a restore."""
BATCHED_FILE_MAX: Final = 8 * MIB
"""Files up to this size are restored through read batches (their chunks in ``/get-chunks``
requests per node); a batched ``/download-plans`` answer gives their replicas batch
references instead of per-chunk capabilities, and bigger files per-chunk capabilities."""
RECORD_OK: Final = 0
RECORD_NOT_FOUND: Final = 1  # missing or quarantined on this node
RECORD_FAILED: Final = 2  # this node could not read it now
RECORD_HEADER = struct.Struct(">32sBI")
"""Each record of a /get-chunks answer: the raw 32-byte chunk id, a status and the length of
the bytes that follow (0 unless the status is RECORD_OK)."""


def read_batch_headers(cap: str, chunk_ids: Sequence[str], tenant: str) -> dict[str, str]:
    """The headers of a ``get-batch`` ``/get-chunks`` request: its capability and what it
    binds (the ordered chunk-id list's ``list_sha256`` and the tenant), checked by the node
    before it reads the body."""
    return {CAPABILITY: cap, BATCH: list_sha256(chunk_ids), TENANT: tenant}


def record_header(chunk_id: str, status: int, size: int) -> bytes:
    return RECORD_HEADER.pack(bytes.fromhex(chunk_id), status, size)


def read_record_header(header: bytes) -> tuple[str, int, int]:
    """(chunk id, status, size) of a /get-chunks record header."""
    raw, status, size = RECORD_HEADER.unpack(header)
    return raw.hex(), status, size
