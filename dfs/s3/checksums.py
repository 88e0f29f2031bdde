"""S3's additional checksums (``x-amz-checksum-crc32``, ``-crc32c``, ``-sha1``, ``-sha256``):
verified on PutObject, kept with the object, returned on GET/HEAD when asked.

A PUT declares a checksum in a header (its value) or in ``x-amz-trailer`` (the value arrives
in the ``aws-chunked`` body's trailer, which ``dfs.s3.bodies`` decodes); ``Checksums``
computes every declared algorithm over the decoded body as it streams and checks each at the
body's end (``BadDigest``), before the object is linked. The verified values are kept in the
object version's user metadata under the reserved keys ``dfs-checksum-<algorithm>`` (the
namespace has no other field for them; a copy carries them along with the same bytes): the
gateway hides those keys from ``x-amz-meta-*`` and refuses them from clients. GET and HEAD
answer them as ``x-amz-checksum-<algorithm>`` when the request says
``x-amz-checksum-mode: ENABLED`` and asks for the whole object. CRC32C is computed by
``google-crc32c`` (its C extension). Other algorithms (CRC64NVME) answer 501.

Multipart uploads: CreateMultipartUpload's ``x-amz-checksum-algorithm`` (``upload_algorithm``)
makes every part carry that algorithm's checksum (verified like a PUT's, computed by the
gateway when the part sent none; another algorithm is ``InvalidRequest``) and the object's
checksum the COMPOSITE one S3 defines (``composite``): the algorithm over the concatenated
raw part checksums, base64, then ``-N`` for N parts. A stored value with that suffix is
answered as ``x-amz-checksum-type: COMPOSITE`` (``of_version``); clients do not check such a
value against the body (botocore skips values with ``-``). FULL_OBJECT checksums of
multipart uploads answer 501.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from typing import Protocol

import google_crc32c
from zlib_ng import zlib_ng

from dfs.meta.namespace import ObjectVersion
from dfs.s3.errors import S3Error, not_implemented

ALGORITHMS = ("crc32", "crc32c", "sha1", "sha256")
HEADER = "x-amz-checksum-"
STORED = "dfs-checksum-"  # reserved user-metadata key prefix
_NOT_VALUES = ("mode", "type", "algorithm")  # x-amz-checksum-mode & co. say how, not a value
ALGORITHM_HEADER = "x-amz-checksum-algorithm"
TYPE_HEADER = "x-amz-checksum-type"
COMPOSITE = "COMPOSITE"


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc:
    """A CRC as a hashlib-like object: ``fn(data, previous) -> int``, 4 bytes big-endian."""

    def __init__(self, fn: Callable[[bytes, int], int]) -> None:
        self._fn = fn
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def _crc32c(data: bytes, previous: int) -> int:
    return int(google_crc32c.extend(previous, data))


def _new(algorithm: str) -> _Hash:
    if algorithm == "crc32":
        return _Crc(zlib_ng.crc32)
    if algorithm == "crc32c":
        return _Crc(_crc32c)
    return hashlib.new(algorithm, usedforsecurity=False)


def bad_checksum(algorithm: str) -> S3Error:
    return S3Error(
        "BadDigest",
        400,
        f"The {algorithm.upper()} you specified did not match the calculated checksum.",
    )


def malformed_trailer() -> S3Error:
    """S3's answer to an ``aws-chunked`` trailer that is not what ``x-amz-trailer`` declared:
    a header it did not name, or one it named that never came."""
    return S3Error(
        "MalformedTrailerError",
        400,
        "The request contained trailing data that was not well-formed or did not conform "
        "to our published schema.",
    )


_DIGEST_BYTES = {"crc32": 4, "crc32c": 4, "sha1": 20, "sha256": 32}
SDK_ALGORITHM_HEADER = "x-amz-sdk-checksum-algorithm"


def is_digest(value: str, size: int) -> bool:
    """Whether ``value`` is the base64 of ``size`` bytes (a digest's form, checked before a
    body is read: S3 refuses a malformed one up front, not as a BadDigest after it)."""
    try:
        return len(base64.b64decode(value, validate=True)) == size
    except ValueError:
        return False


def _well_formed(algorithm: str, value: str) -> str:
    """``value`` if it is the base64 of a digest of ``algorithm`` (else InvalidRequest)."""
    if not is_digest(value, _DIGEST_BYTES[algorithm]):
        raise S3Error("InvalidRequest", 400, f"Value for {HEADER}{algorithm} header is invalid.")
    return value


def _check_sdk_algorithm(sdk: str | None, declared: list[str]) -> None:
    """``x-amz-sdk-checksum-algorithm`` names the checksum the request declares (S3 refuses
    one without it, or naming another)."""
    if sdk is None:
        return
    if not declared:
        raise S3Error(
            "InvalidRequest",
            400,
            f"{SDK_ALGORITHM_HEADER} specified, but no corresponding {HEADER}* or "
            "x-amz-trailer headers were found.",
        )
    if sdk.strip().lower() not in declared:
        raise S3Error("InvalidRequest", 400, f"Value for {SDK_ALGORITHM_HEADER} header is invalid.")


def _algorithm(header: str) -> str:
    name = header.strip().lower().removeprefix(HEADER)
    if name not in ALGORITHMS:
        raise not_implemented(f"the {header.strip()} checksum")
    return name


class Checksums:
    """The checksums a request declares, computed over its decoded body; ``also``: one more
    algorithm computed (not checked) when the request does not declare it."""

    def __init__(self, declared: Mapping[str, str | None], also: str = "") -> None:
        self.declared = dict(declared)  # algorithm -> the header's value, None: a trailer's
        self._computed = {also} if also and also not in self.declared else set()
        self._hashes = {a: _new(a) for a in (*self.declared, *self._computed)}
        self.values: dict[str, str] = {}

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], also: str = "") -> Checksums:
        """The checksum a request declares: at most one, in an ``x-amz-checksum-*`` header
        or named by ``x-amz-trailer`` (S3's rule, ``InvalidRequest`` otherwise: declared in
        both, the trailer's value went unchecked), well formed, and the algorithm
        ``x-amz-sdk-checksum-algorithm`` names when that is sent."""
        found: list[tuple[str, str | None]] = []
        for name, value in headers.items():
            if name.lower().startswith(HEADER) and name.lower()[len(HEADER) :] not in _NOT_VALUES:
                algorithm = _algorithm(name)
                found.append((algorithm, _well_formed(algorithm, value.strip())))
        for name in headers.get("x-amz-trailer", "").split(","):
            if name.strip():
                found.append((_algorithm(name), None))
        if len(found) > 1:
            raise S3Error(
                "InvalidRequest",
                400,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not "
                "allowed.",
            )
        _check_sdk_algorithm(headers.get(SDK_ALGORITHM_HEADER), [a for a, _ in found])
        return cls(dict(found), also)

    @classmethod
    def for_part(cls, headers: Mapping[str, str], algorithm: str) -> Checksums:
        """An UploadPart's checksums: those it declares, which must be the upload's
        ``algorithm`` when it has one (computed by the gateway when not sent)."""
        sums = cls.from_headers(headers, algorithm)
        other = sorted(set(sums.declared) - {algorithm})
        if algorithm and other:
            raise S3Error(
                "InvalidRequest",
                400,
                f"Checksum Type mismatch occurred, expected checksum Type: {algorithm}, "
                f"actual checksum Type: {other[0]}",
            )
        return sums

    def update(self, data: bytes) -> None:
        for h in self._hashes.values():
            h.update(data)

    def verify(self, trailers: Mapping[str, str]) -> None:
        """Check each declared value against the body read (BadDigest on a mismatch; a
        declared trailer that did not come is MalformedTrailerError, as in S3)."""
        for algorithm, h in self._hashes.items():
            got = base64.b64encode(h.digest()).decode()
            if algorithm in self._computed:
                self.values[algorithm] = got
                continue
            want = self.declared[algorithm]
            if want is None:
                want = trailers.get(HEADER + algorithm)
                if want is None:
                    raise malformed_trailer()
            if want != got:
                raise bad_checksum(algorithm)
            self.values[algorithm] = got

    def stored(self) -> tuple[tuple[str, str], ...]:
        """The verified values as the reserved metadata entries."""
        return tuple((STORED + a, v) for a, v in sorted(self.values.items()))

    def response_headers(self) -> dict[str, str]:
        return {HEADER + a: v for a, v in sorted(self.values.items())}


RESERVED = "dfs-"  # user-metadata keys the gateway keeps for itself (checksums, part sizes)


def is_reserved(meta_key: str) -> bool:
    return meta_key.lower().startswith(RESERVED)


def of_version(v: ObjectVersion) -> dict[str, str]:
    """The checksum headers of a stored version (GET/HEAD with checksum mode)."""
    out = {HEADER + k[len(STORED) :]: val for k, val in v.user_metadata if k.startswith(STORED)}
    if out:
        composite = any("-" in val for val in out.values())  # base64 holds no "-"
        out[TYPE_HEADER] = COMPOSITE if composite else "FULL_OBJECT"
    return out


def upload_algorithm(headers: Mapping[str, str]) -> str:
    """CreateMultipartUpload's ``x-amz-checksum-algorithm`` (lower-case; "" when absent),
    whose object checksum is COMPOSITE (``x-amz-checksum-type``: absent or COMPOSITE)."""
    raw = headers.get(ALGORITHM_HEADER, "").strip()
    kind = headers.get(TYPE_HEADER, "").strip().upper()
    if not raw:
        if kind:
            raise S3Error("InvalidRequest", 400, f"{TYPE_HEADER} needs {ALGORITHM_HEADER}")
        return ""
    name = raw.lower()
    if name == "crc64nvme" or kind == "FULL_OBJECT":
        raise not_implemented("full-object (and CRC64NVME) checksums of multipart uploads")
    if name not in ALGORITHMS:
        raise S3Error("InvalidRequest", 400, f"Invalid {ALGORITHM_HEADER}: {raw}")
    if kind not in ("", COMPOSITE):
        raise S3Error("InvalidRequest", 400, f"Invalid {TYPE_HEADER}: {kind}")
    return name


def composite(algorithm: str, part_values: list[str]) -> str:
    """S3's composite checksum of a multipart object: ``algorithm`` over the parts' raw
    checksums in part order, base64, then ``-N``."""
    h = _new(algorithm)
    for value in part_values:
        h.update(base64.b64decode(value))
    return f"{base64.b64encode(h.digest()).decode()}-{len(part_values)}"


def user_metadata(v: ObjectVersion) -> dict[str, str]:
    """The ``x-amz-meta-*`` headers of a version (the reserved entries left out)."""
    return {
        f"x-amz-meta-{k}": val
        for k, val in v.user_metadata
        if not is_reserved(k) and val.isprintable()
    }
