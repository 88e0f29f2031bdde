"""The dfs error tree: every failure a user, a handler or a CLI command can see.

Each class carries its wire ``code`` (the ``error.code`` of a JSON error body), the
``http_status`` a server answers with, and the ``exit_code`` of the CLI. Foreign exceptions
(sqlite3, botocore, aiohttp) are translated into these once, at the adapter that meets them.

    DfsError
    ├── InvalidRequest (ValueError)        400  bad id, bad body, bad parameter
    │   ├── PayloadTooLarge                413  body above the bound
    │   ├── RequestTimeout                 408  body sent too slowly
    │   ├── UnsupportedMediaType           415  body is not of the type the endpoint reads
    │   └── ConfigError                    invalid configuration at start (names the variable)
    ├── AuthError                          401  no or unknown credentials
    │   └── Forbidden                      403  valid credentials, not allowed (or expired capability)
    ├── NotFound (LookupError)             404
    │   ├── ChunkNotFound
    │   ├── FileNotFound
    │   ├── NodeNotFound
    │   ├── BucketNotFound                      (S3: NoSuchBucket)
    │   └── KeyNotFound                         (S3: NoSuchKey; also a key of a version)
    ├── Conflict                           409  lost a conditional write, or state does not allow it
    │   ├── IncompleteUpload               409  finalize before every chunk has its copies
    │   ├── BucketExists                   409  the name is taken (by any tenant)
    │   ├── KeyExists                      409  a conditional create found the key taken
    │   ├── EtagMismatch                   409  a conditional write found another ETag
    │   └── BucketNotEmpty                 409  versions or delete markers remain
    ├── IntegrityError                     422  bytes do not match their sha256
    ├── InsufficientStorage                507  the node's disk is full
    ├── ReplicationError                   502  fewer durable copies than required
    └── Unavailable (ConnectionError)      503  not enough live nodes, a peer unreachable

This module imports nothing from dfs and nothing outside the standard library.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DfsError(Exception):
    """Base of every dfs error."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        """The JSON error body of the wire protocol."""
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return {"error": err}


class InvalidRequest(DfsError, ValueError):
    """The request is malformed: a bad id, a missing field, a value out of range."""

    code = "invalid_request"
    http_status = 400
    exit_code = 2


class PayloadTooLarge(InvalidRequest):
    """The body is larger than the bound for this endpoint."""

    code = "payload_too_large"
    http_status = 413


class RequestTimeout(InvalidRequest):
    """The body did not arrive within its time budget (a slow or stalled client)."""

    code = "request_timeout"
    http_status = 408


class UnsupportedMediaType(InvalidRequest):
    """The body's Content-Type is not one the endpoint reads."""

    code = "unsupported_media_type"
    http_status = 415


class ConfigError(InvalidRequest):
    """Invalid configuration: ``{field}={value!r}: {reason}``."""

    code = "config_error"
    exit_code = 78  # EX_CONFIG

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field}={value!r}: {reason}")
        self.field = field


class AuthError(DfsError):
    """Missing or invalid credentials."""

    code = "unauthorized"
    http_status = 401
    exit_code = 3


class Forbidden(AuthError):
    """The credentials are valid but do not allow this (or a capability has expired)."""

    code = "forbidden"
    http_status = 403


class NotFound(DfsError, LookupError):
    """The thing asked for does not exist (or is not visible to the caller)."""

    code = "not_found"
    http_status = 404
    exit_code = 4


class ChunkNotFound(NotFound):
    code = "chunk_not_found"


class FileNotFound(NotFound):
    code = "file_not_found"


class NodeNotFound(NotFound):
    code = "node_not_found"


class BucketNotFound(NotFound):
    code = "no_such_bucket"


class KeyNotFound(NotFound):
    code = "no_such_key"


class ContentNotStored(NotFound):
    """``PUT /objects`` by ``sha256``: the caller's tenant stores no complete file found to
    hold those bytes (the caller then uploads them)."""

    code = "content_not_stored"


class UploadNotFound(NotFound):
    """An S3 multipart upload that does not exist (any more), or is not in the state the
    call needs (completed, aborted, being completed)."""

    code = "no_such_upload"


class Conflict(DfsError):
    """A conditional write lost, or the current state does not allow the operation."""

    code = "conflict"
    http_status = 409
    exit_code = 5


class IncompleteUpload(Conflict):
    """Finalize was asked before every chunk had its required copies."""

    code = "incomplete_upload"


class BucketExists(Conflict):
    """A bucket of that name exists (bucket names are unique across all tenants)."""

    code = "bucket_exists"


class KeyExists(Conflict):
    """A conditional create (``if_absent``) found the key already holding an object."""

    code = "key_exists"


class EtagMismatch(Conflict):
    """A conditional write (``if_match``) found the key's current object with another ETag."""

    code = "etag_mismatch"


class SourceChanged(Conflict):
    """A copy's source key was written between the caller's read of it and the copy (its
    version now links another file): the fields the caller built from that read would be
    joined to other bytes. Server-side only (``copy_object``'s ``expect_file``): the
    namespace reads the source again and retries; on the wire it is its parent."""


class BucketNotEmpty(Conflict):
    """A bucket still holds versions or delete markers."""

    code = "bucket_not_empty"


class IntegrityError(DfsError):
    """Bytes do not hash to the id they were sent or stored under."""

    code = "integrity_error"
    http_status = 422
    exit_code = 6


CHANGED = "the file changed while it was being uploaded; upload it again"


class FileChanged(IntegrityError):
    """Client-side: a file changed while it was being uploaded (``CHANGED``), so what would
    be stored is no one version of it. Its upload is given up (nothing resumes it); a
    directory upload that reports failures per file (``dfs.client.upload``'s
    ``UploadPipeline.failed``) reports it and goes on. On the wire it is its parent."""

    def __init__(self, message: str = CHANGED) -> None:
        super().__init__(message)


class InsufficientStorage(DfsError):
    """The node cannot store more bytes."""

    code = "insufficient_storage"
    http_status = 507
    exit_code = 7


class ReplicationError(DfsError):
    """Fewer durable copies than the replication factor requires."""

    code = "replication_failed"
    http_status = 502
    exit_code = 7


class Unavailable(DfsError, ConnectionError):
    """A peer cannot be reached, or too few nodes are live to serve the request.

    ``overtaken_by``: the node whose failure gave this request up before its own deadline
    (a client cancels its other writes to a node once one of them failed, see
    ``dfs.client.avoid``); None when this request failed on its own. Client-side only: never
    on the wire.
    """

    code = "unavailable"
    http_status = 503
    exit_code = 7

    def __init__(self, message: str, *, overtaken_by: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.overtaken_by = overtaken_by


class Unreachable(Unavailable):
    """No answer came: the connection was refused, or it broke before the whole answer
    arrived (no HTTP status to go by). The request may or may not have been carried out, so
    only a request that may be repeated is sent again on it (``dfs.transport.api_client``).
    On the wire (a server that could not reach its peer answers it) it is ``unavailable``:
    its code is its parent's, and a body read back is an ``Unavailable``."""


class Busy(Unavailable):
    """The server holds and queues as many requests of this kind as it takes (a tenant's or
    all of a process's slots: ``dfs.api.body_slots``) and refused this one before doing
    anything of it: any request, even one that may not be repeated, is sent again after a
    pause (``dfs.transport.api_client``). A client that does not know the code takes it as
    ``unavailable`` (the same status)."""

    code = "busy"


_ALL: tuple[type[DfsError], ...] = (
    DfsError,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    ConfigError,
    AuthError,
    Forbidden,
    NotFound,
    ChunkNotFound,
    FileNotFound,
    NodeNotFound,
    BucketNotFound,
    KeyNotFound,
    ContentNotStored,
    UploadNotFound,
    Conflict,
    IncompleteUpload,
    BucketExists,
    KeyExists,
    EtagMismatch,
    BucketNotEmpty,
    IntegrityError,
    InsufficientStorage,
    ReplicationError,
    Unavailable,
    Busy,  # after Unavailable: an unknown code with its status is read as that
)
BY_CODE: dict[str, type[DfsError]] = {cls.code: cls for cls in _ALL if cls is not ConfigError}


def from_body(status: int, body: object) -> DfsError:
    """Rebuild the error a server sent as ``{"error": {"code", "message"}}``.

    Unknown codes map to the class whose status matches, so a newer server still yields a
    sensible error class in an older client.
    """
    code, message, details = "", f"HTTP {status}", {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code", ""))
        message = str(err.get("message", message))
        if isinstance(err.get("details"), dict):
            details = dict(err["details"])
    cls = BY_CODE.get(code)
    if cls is None:
        by_status = [c for c in _ALL if c.http_status == status and c is not ConfigError]
        cls = by_status[0] if by_status else DfsError
    # details are the peer's data: set them after construction, so that a key such as
    # "message" cannot collide with the constructor's parameter (TypeError in the client)
    exc = cls(message)
    exc.details = details
    return exc
