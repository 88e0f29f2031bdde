"""Credentials: API bearer tokens, HMAC-signed node capabilities and upload receipts.

- **Tokens** are random strings (``dfs_`` + 43 url-safe characters, 256 bits). Only their
  SHA-256 is stored; a token names a tenant and a role (``admin`` or ``user``).
- **Capabilities** let the holder do one operation on one chunk on one node until an expiry at
  most ``CAP_MAX_TTL`` seconds away. The API mints them with the cluster secret; nodes verify
  them, and mint their own for node-to-node replication. Wire form: ``<expires>.<hex mac>``.
- **Batch capabilities** (ops ``put-batch`` and ``replicate-batch``) grant one
  ``/store-chunks`` request: instead of a chunk id they bind the SHA-256 of the batch's ordered
  chunk-id list (and a ``put-batch`` the SHA-256 of the ordered file ids of its chunks), so a
  node checks the grant from the request's headers before it reads a byte of the body, and
  then that the body carries exactly that list. A ``get-batch`` capability grants one
  ``/get-chunks`` request the same way (the ordered chunk-id list, plus the tenant the API
  minted it for after checking that tenant's files reference every chunk of it).
- **Download links** (op ``download``) let anyone holding the URL read one file of one tenant
  until an expiry at most ``CAP_MAX_TTL`` away: the capability binds file id and tenant. They
  are signed with the API's own secret (DFS_API_SECRET), which nodes never hold.
- **Sealed values** (``seal``/``unseal``) are opaque, tamper-proof strings for the client to
  hand back, such as page keys: base64url payload plus an HMAC bound to a purpose (also with
  the API's own secret).
- **Node calls** (ops ``heartbeat`` and ``deregister``) are minted by a node for the API. They
  bind the node's boot number (greater at every start, kept on the node's disk) and a
  sequence number that grows with every call of that boot (the API keeps the last accepted
  pair per node in the metadata store and refuses anything not newer, so a captured call
  cannot be replayed, not even after the node restarted), and a heartbeat also binds the
  address, port, capacity and disk identity it announces (so it cannot re-register the node
  elsewhere or with another disk).
- **Receipts** are minted by a node after it verified a chunk's bytes for an upload: they
  prove to ``finalize-upload`` that this upload really sent the bytes (the defence against
  the "Dropship" attack on client-side dedup).

Every MAC covers a version tag and newline-separated fields that cannot contain newlines
(ids are validated before they get here). Comparisons are constant-time. Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time

from dfs.errors import AuthError, Forbidden, InvalidRequest

CAP_MAX_TTL = 15 * 60
"""Longest a capability may live (seconds)."""
DEFAULT_CAP_TTL = 600.0
RECEIPT_TTL = 24 * 3600
CLOCK_SKEW = 60
MIN_SECRET_LENGTH = 32

ROLE_ADMIN = "admin"
ROLE_USER = "user"
ROLES = (ROLE_ADMIN, ROLE_USER)

# operations a capability can grant
OP_PUT = "put"  # client -> primary node, for an upload (file id bound, forward list bound)
OP_REPLICATE = "replicate"  # primary -> replica node
# one /store-chunks request: the chunk field is the SHA-256 of the batch's ordered chunk-id
# list (protocol.list_sha256), so the node checks it from headers before reading the body
OP_PUT_BATCH = "put-batch"  # client -> primary (file ids and forward list bound, as put)
OP_REPLICATE_BATCH = "replicate-batch"  # primary -> replica node
OP_GET = "get"
# one /get-chunks request: the chunk field is the SHA-256 of the batch's ordered chunk-id list,
# the extra field the tenant the API minted it for (checked from headers before the body)
OP_GET_BATCH = "get-batch"
OP_HAS = "has"  # API -> node batch presence check
OP_STATUS = "status"
OP_HEARTBEAT = "heartbeat"  # node -> API registration (all it announces, boot and seq bound)
OP_DEREGISTER = "deregister"  # node -> API on a clean shutdown (boot and seq bound)
OP_RECEIPT = "receipt"
OP_DELETE = "delete"  # API -> node: garbage collection and trimming surplus copies
OP_COPY = "copy"  # API -> node: repair, copy a chunk to the node the extra field names
OP_LIST = "list"  # API -> node: page through stored chunk ids (orphan sweep)
OP_DOWNLOAD = "download"  # API -> anyone with the signed URL: one file of one tenant
ANY_CHUNK = "*"

# The one canonical wire form of a capability: an expiry without leading zeros (ASCII digits
# only: str.isdigit() also admits "²", which int() refuses) and a lowercase hex MAC, so no
# two strings carry the same grant.
_CAP_RE = re.compile(r"[1-9][0-9]{0,11}\.[0-9a-f]{64}")


def new_token() -> str:
    return "dfs_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens carry 256 random bits, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


TOKEN_ID_LENGTH = 16
TOKEN_ID_RE = re.compile(r"[0-9a-f]{16}")


def token_id(token_hash: str) -> str:
    """A token's name, not a secret: the first 64 bits of its stored SHA-256 (which reveals
    nothing of the token's 256 random bits)."""
    return token_hash[:TOKEN_ID_LENGTH]


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _mac(secret: bytes, op: str, chunk_id: str, node_id: str, expires: int, extra: str) -> str:
    for f in (op, chunk_id, node_id, extra):
        if "\n" in f:
            raise ValueError("capability fields must not contain newlines")
    msg = "\n".join(("dfs-cap-v1", op, chunk_id, node_id, str(expires), extra)).encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def mint(
    secret: bytes,
    op: str,
    chunk_id: str,
    node_id: str,
    *,
    ttl: float = DEFAULT_CAP_TTL,
    extra: str = "",
    now: float | None = None,
) -> str:
    expires = int((time.time() if now is None else now) + ttl)
    return f"{expires}.{_mac(secret, op, chunk_id, node_id, expires, extra)}"


def check(
    secret: bytes,
    cap: str | None,
    op: str,
    chunk_id: str,
    node_id: str,
    *,
    extra: str = "",
    now: float | None = None,
    max_ttl: float = CAP_MAX_TTL,
) -> None:
    """Raise AuthError if ``cap`` is missing or malformed, Forbidden if it does not grant
    exactly this operation or has expired."""
    if not cap:
        raise AuthError("a capability signed by the API is required")
    if not _CAP_RE.fullmatch(cap):
        raise AuthError("malformed capability")
    exp_text, _, mac = cap.partition(".")
    expires = int(exp_text)
    now = time.time() if now is None else now
    expected = _mac(secret, op, chunk_id, node_id, expires, extra)
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise Forbidden("capability does not grant this operation")
    if expires <= now:
        raise Forbidden("capability has expired; ask the API for a fresh plan")
    if expires > now + max_ttl + CLOCK_SKEW:
        raise Forbidden("capability lives longer than allowed")


NODE_CALL_TTL = 60.0
"""Seconds a node's heartbeat or deregistration capability lives."""
MAX_BOOT = (1 << 63) - 1
"""Boot numbers (``dfs.node.disk_identity.next_boot``) and sequences fit a signed 64 bits."""


def node_call_extra(boot: int, seq: int, *fields: str | int) -> str:
    """The MAC's extra field of a node call: boot, sequence and what the call announces, as
    one compact JSON array, so that no text field (a zone may hold spaces) can run into the
    next and no newline reaches the MAC's message."""
    return json.dumps([boot, seq, *fields], separators=(",", ":"))


def mint_heartbeat(
    secret: bytes,
    node_id: str,
    boot: int,
    seq: int,
    host: str,
    port: int,
    capacity: int,
    disk_id: str,
    *,
    used: int,
    zone: str,
) -> str:
    """A heartbeat's capability: it binds everything the heartbeat announces, so that nothing
    placement acts on (address, capacity, use, zone, disk) can be changed on the way."""
    extra = node_call_extra(boot, seq, host, port, capacity, disk_id, used, zone)
    return mint(secret, OP_HEARTBEAT, ANY_CHUNK, node_id, ttl=NODE_CALL_TTL, extra=extra)


def mint_deregister(secret: bytes, node_id: str, boot: int, seq: int) -> str:
    extra = node_call_extra(boot, seq)
    return mint(secret, OP_DEREGISTER, ANY_CHUNK, node_id, ttl=NODE_CALL_TTL, extra=extra)


def mint_receipt(secret: bytes, file_id: str, chunk_id: str, now: float | None = None) -> str:
    return mint(secret, OP_RECEIPT, chunk_id, ANY_CHUNK, ttl=RECEIPT_TTL, extra=file_id, now=now)


def receipt_ok(secret: bytes, receipt: object, file_id: str, chunk_id: str) -> bool:
    if not isinstance(receipt, str):
        return False
    try:
        check(secret, receipt, OP_RECEIPT, chunk_id, ANY_CHUNK, extra=file_id, max_ttl=RECEIPT_TTL)
    except AuthError:
        return False
    return True


def seal(secret: bytes, purpose: str, payload: str) -> str:
    """An opaque, tamper-proof wire form of ``payload`` for ``purpose``."""
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    mac = hmac.new(secret, f"dfs-seal-v1\n{purpose}\n{body}".encode(), hashlib.sha256)
    return f"{body}.{mac.hexdigest()[:32]}"


def unseal(secret: bytes, purpose: str, sealed: str) -> str:
    """The payload ``seal`` wrapped; InvalidRequest if it was altered or made for another use."""
    body, dot, mac = sealed.rpartition(".")
    expected = hmac.new(secret, f"dfs-seal-v1\n{purpose}\n{body}".encode(), hashlib.sha256)
    if not dot or not hmac.compare_digest(mac.encode(), expected.hexdigest()[:32].encode()):
        raise InvalidRequest("invalid page key")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("invalid page key") from None
