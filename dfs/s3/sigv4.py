"""AWS Signature Version 4, as S3 clients sign requests: in the Authorization header or in a
presigned query string.

The expected signature is computed by botocore's own SigV4 code (``S3SigV4Auth`` and
``S3SigV4QueryAuth``: canonical request, string to sign, key derivation) over an
``AWSRequest`` rebuilt from the incoming request's method, raw path and query, and the
headers the client says it signed; then compared in constant time. The secret of the access
key is looked up and opened (``dfs.access_keys``) at most once per ``KEY_CACHE_SECONDS``
per gateway process (``KeyCache``), so a revoked key is refused by every gateway within
that many seconds.

A chunk-signed body (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` and its ``-TRAILER`` form) signs
each chunk with a chain that starts at the request's own signature (the seed):
``ChunkChain`` holds the signing key and the last signature so that ``dfs.s3.bodies`` can
check every chunk, and the trailer, before their bytes are used.
"""

from __future__ import annotations

import calendar
import dataclasses
import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dfs import access_keys
from dfs.meta.base import MetadataStore
from dfs.s3.errors import S3Error, access_denied, not_implemented, signature_mismatch

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = 15 * 60  # seconds a header-signed request's date may be off (S3's rule)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
KEY_CACHE_SECONDS = 5.0
"""How long a gateway reuses an access key it looked up (and its opened secret): a revoked
key is refused by every gateway within this many seconds."""
KEY_CACHE_SIZE = 4096  # keys held at most (least recently used dropped first)
DERIVED_PER_KEY = 4  # signing keys an entry holds (a day or two, a region or two)


@dataclass(frozen=True)
class OpenKey:
    tenant: str
    secret: str
    until: float  # monotonic seconds
    # signing keys derived from the secret, by (date, region): kept with the entry, so a
    # revoked key's secret and its derived keys leave memory when the entry does
    derived: dict[tuple[str, str], bytes] = field(default_factory=dict, compare=False)

    def signing_key(self, date: str, region: str) -> bytes:
        """``signing_key`` of this secret, derived once per entry, day and region (four
        HMACs saved per request)."""
        got = self.derived.get((date, region))
        if got is None:
            if len(self.derived) >= DERIVED_PER_KEY:
                self.derived.clear()
            got = self.derived[date, region] = signing_key(self.secret, date, region)
        return got


class KeyCache:
    """Access keys by id, each looked up in the metadata store and its sealed secret opened
    once per ``ttl`` seconds instead of on every request (a metadata read and an AES-GCM
    open per small object otherwise). Bounded (``size``); an unknown id is never cached, so
    a new key works at once and unknown ids cannot fill it."""

    def __init__(
        self,
        meta: MetadataStore,
        api_secret: bytes,
        ttl: float = KEY_CACHE_SECONDS,
        size: int = KEY_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._meta = meta
        self._api_secret = api_secret
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._keys: OrderedDict[str, OpenKey] = OrderedDict()

    async def get(self, key_id: str) -> OpenKey | None:
        """The key's tenant and secret; None for an id that is not a live key."""
        now = self._clock()
        hit = self._keys.get(key_id)
        if hit is not None and now < hit.until:
            self._keys.move_to_end(key_id)
            return hit
        self._keys.pop(key_id, None)
        rec = await self._meta.get_access_key(key_id) if access_keys.is_key_id(key_id) else None
        if rec is None:
            return None
        secret = access_keys.open_secret(
            self._api_secret, rec.access_key_id, rec.tenant, rec.sealed_secret
        )
        opened = OpenKey(rec.tenant, secret, now + self._ttl)
        self._keys[key_id] = opened
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return opened


@dataclass(frozen=True)
class Signed:
    """What a request's signature says: who signed, and what the body must hash to."""

    access_key_id: str
    amz_date: str
    region: str
    signed_headers: tuple[str, ...]
    signature: str
    presigned: bool
    expires: int = 0
    scope_date: str = ""  # the credential scope's yyyymmdd: the day of ``amz_date``


def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """SigV4's derived key: HMAC-SHA256 over the date, region, service and terminator."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@dataclass
class ChunkChain:
    """The signature chain of a chunk-signed body. Each chunk's signature signs the SHA-256
    of its data and the previous signature (the request's own signature for the first), so
    a chunk cannot be changed, dropped, reordered or replayed from another request; the
    trailer's signature continues the chain after the final, empty chunk."""

    key: bytes
    amz_date: str
    scope: str
    previous: str

    def _next(self, string_to_sign: str, signature: str) -> None:
        expected = hmac.new(self.key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise signature_mismatch()
        self.previous = expected

    def check_chunk(self, signature: str, data_sha256: str) -> None:
        """SignatureDoesNotMatch unless ``signature`` signs a chunk of that SHA-256 (hex)."""
        head = f"{ALGORITHM}-PAYLOAD\n{self.amz_date}\n{self.scope}\n{self.previous}"
        self._next(f"{head}\n{EMPTY_SHA256}\n{data_sha256}", signature)

    def check_trailer(self, signature: str, trailer: bytes) -> None:
        """SignatureDoesNotMatch unless ``signature`` signs the canonical trailer
        (``name:value\\n`` per trailing header)."""
        digest = hashlib.sha256(trailer).hexdigest()
        head = f"{ALGORITHM}-TRAILER\n{self.amz_date}\n{self.scope}\n{self.previous}"
        self._next(f"{head}\n{digest}", signature)


@dataclass(frozen=True)
class Caller:
    tenant: str
    access_key_id: str
    payload_hash: str  # x-amz-content-sha256 as signed (``signed_payload``)
    chain: ChunkChain | None = None  # for a chunk-signed body: its chain, from the seed


def _malformed(message: str) -> S3Error:
    return S3Error("AuthorizationHeaderMalformed", 400, message)


def _scope(credential: str) -> tuple[str, str, str]:
    """(key id, date, region) of ``AKID/yyyymmdd/region/s3/aws4_request``."""
    parts = credential.split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        raise _malformed("the credential must be KEY/DATE/REGION/s3/aws4_request")
    return parts[0], parts[1], parts[2]


def parse_header(value: str) -> Signed:
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise _malformed(f"only {ALGORITHM} is supported")
    fields = {}
    for item in rest.split(","):
        name, _, val = item.strip().partition("=")
        fields[name] = val
    try:
        key_id, day, region = _scope(fields["Credential"])
        signed = tuple(fields["SignedHeaders"].split(";"))
        signature = fields["Signature"]
    except KeyError as exc:
        raise _malformed(f"the Authorization header has no {exc.args[0]}") from None
    return Signed(key_id, "", region, signed, signature, presigned=False, scope_date=day)


_EXPIRES = re.compile(r"-?[0-9]{1,18}", re.ASCII)


def _query_error(message: str) -> S3Error:
    """S3's answer to a presigned URL's missing or malformed X-Amz-* parameter."""
    return S3Error("AuthorizationQueryParametersError", 400, message)


def _expires(value: str) -> int:
    """``X-Amz-Expires``: whole seconds, from 0 to a week (S3's checks and messages; ``int``
    also took a sign, blanks and underscores)."""
    if not _EXPIRES.fullmatch(value):
        raise _query_error("X-Amz-Expires should be a number")
    expires = int(value)
    if expires < 0:
        raise _query_error("X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise _query_error(
            "X-Amz-Expires must be less than a week (in seconds) that is 7 days or 604800 seconds"
        )
    return expires


def parse_query(request: web.Request) -> Signed:
    q = request.query
    if q.get("X-Amz-Algorithm") != ALGORITHM:
        raise _malformed(f"only {ALGORITHM} is supported")
    try:
        key_id, day, region = _scope(q["X-Amz-Credential"])
        return Signed(
            key_id,
            q["X-Amz-Date"],
            region,
            tuple(q["X-Amz-SignedHeaders"].split(";")),
            q["X-Amz-Signature"],
            presigned=True,
            expires=_expires(q["X-Amz-Expires"]),
            scope_date=day,
        )
    except KeyError:
        raise _query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters."
        ) from None


_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z", re.ASCII)


def _epoch(amz_date: str, presigned: bool) -> int:
    """Seconds since the epoch of ``yyyymmddThhmmssZ`` (parsed by hand: strptime took a
    measurable share of a small request); S3's error for another form of it."""
    m = _AMZ_DATE.fullmatch(amz_date)
    y, mo, d, h, mi, s = (int(g) for g in m.groups()) if m else (0, 0, 0, 0, 0, 0)
    # seconds up to 60 (a leap second), as strptime took them
    valid = y >= 1 and 1 <= mo <= 12 and h < 24 and mi < 60 and s <= 60
    if valid and 1 <= d <= calendar.monthrange(y, mo)[1]:
        return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    if presigned:
        raise _query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    raise access_denied("X-Amz-Date must be yyyymmddThhmmssZ")


def check_time(signed: Signed, now: float) -> None:
    at = _epoch(signed.amz_date, signed.presigned)
    if signed.scope_date and signed.scope_date != signed.amz_date[:8]:
        why = "Invalid credential date. Date is not the same as X-Amz-Date."
        raise _query_error(why) if signed.presigned else _malformed(why)
    if signed.presigned:
        if not 0 <= signed.expires <= MAX_PRESIGN_EXPIRES:
            raise _query_error("X-Amz-Expires must be between 0 and 604800 seconds")
        if now > at + signed.expires:
            raise access_denied("Request has expired")
        if at > now + MAX_SKEW:
            raise S3Error("RequestTimeTooSkewed", 403, "the request's date is in the future")
    elif abs(now - at) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            403,
            "The difference between the request time and the current time is too large.",
        )


def _raw_query(request: web.Request, presigned: bool) -> str:
    """The query as the client sent it (SigV4 signs its encoded form), without the
    signature itself for a presigned request."""
    raw = request.raw_path.partition("?")[2]
    if not presigned:
        return raw
    return "&".join(p for p in raw.split("&") if not p.startswith("X-Amz-Signature="))


def expected_signature(
    request: web.Request, signed: Signed, secret: str, key: bytes | None = None
) -> str:
    """The signature ``request`` must carry; ``key``: the signing key of ``secret`` for
    the request's day and region, if derived already."""
    path = request.raw_path.partition("?")[0]
    query = _raw_query(request, signed.presigned)
    url = f"http://{request.host}{path}" + (f"?{query}" if query else "")
    headers = {}
    for name in signed.signed_headers:
        values = request.headers.getall(name, [])
        if not values:
            raise signature_mismatch()
        headers[name] = ",".join(values)
    aws = AWSRequest(method=request.method, url=url, headers=headers)
    aws.context["timestamp"] = signed.amz_date
    creds = Credentials(signed.access_key_id, secret)
    signer = (S3SigV4QueryAuth if signed.presigned else S3SigV4Auth)(creds, "s3", signed.region)
    to_sign = signer.string_to_sign(aws, signer.canonical_request(aws))
    # botocore's signature() derives the key again on every call: the one held, if any
    if key is None:
        key = signing_key(secret, signed.amz_date[:8], signed.region)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


PRESIGNED_UNSIGNED_OK = frozenset({"x-amz-content-sha256"})
"""``x-amz-*`` headers a presigned request may carry unsigned: its payload is
UNSIGNED-PAYLOAD whatever this header says unless it is signed (``signed_payload``)."""


def refuse_unsigned_amz_headers(request: web.Request, signed: Signed) -> None:
    """AccessDenied when the request carries an ``x-amz-*`` header its signature does not
    cover, as S3 answers. Such a header would otherwise change what a signed request does
    while the signature still matches: a presigned PutObject URL (which signs ``host``
    alone) sent with ``x-amz-copy-source`` became a CopyObject of anything the signer may
    read, with ``x-amz-acl`` a public one; an unsigned ``x-amz-content-sha256`` of
    UNSIGNED-PAYLOAD let a captured header-signed request carry another body. (The
    AWS SDKs, the AWS CLI, rclone and minio-go sign every ``x-amz-*`` header they send;
    ``x-amzn-trace-id`` is not one.)"""
    covered = {h.lower() for h in signed.signed_headers}
    exempt = PRESIGNED_UNSIGNED_OK if signed.presigned else frozenset()
    unsigned = sorted(
        {
            name.lower()
            for name in request.headers
            if name.lower().startswith("x-amz-") and name.lower() not in covered
        }
        - exempt
    )
    if unsigned:
        raise access_denied(
            "There were headers present in the request which were not signed: "
            + ", ".join(unsigned)
        )


def signed_payload(request: web.Request, signed: Signed) -> str:
    """What the signature says the body hashes to: ``x-amz-content-sha256`` as signed
    ("" when a header-signed request has none). A presigned URL signs UNSIGNED-PAYLOAD in
    its canonical request, unless its signer signed that header too: then the header's
    value is what was signed (botocore's canonical request takes it), and the body must
    match it as a header-signed request's must. Read as UNSIGNED-PAYLOAD regardless, such a
    URL, made to let its holder upload one given body, took any body."""
    header = request.headers.get("x-amz-content-sha256", "")
    if not signed.presigned:
        return header
    covered = {h.lower() for h in signed.signed_headers}
    return header if "x-amz-content-sha256" in covered else UNSIGNED


def read_signature(request: web.Request) -> Signed:
    header = request.headers.get("Authorization")
    if (header or "").startswith("AWS ") or "AWSAccessKeyId" in request.query:
        raise not_implemented("AWS signature version 2 (sign with SigV4: s3v4)")
    if header:
        signed = parse_header(header)
        amz_date = request.headers.get("x-amz-date", "")
        if not amz_date:
            raise access_denied("a signed request needs an x-amz-date header")
        return dataclasses.replace(signed, amz_date=amz_date)
    if "X-Amz-Signature" in request.query:
        return parse_query(request)
    raise access_denied("anonymous requests are not supported: sign with an access key")


async def authenticate(request: web.Request, keys: KeyCache, now: float) -> Caller:
    """The tenant whose access key signed ``request``; AccessDenied, InvalidAccessKeyId,
    SignatureDoesNotMatch or RequestTimeTooSkewed otherwise."""
    signed = read_signature(request)
    check_time(signed, now)
    key = await keys.get(signed.access_key_id)
    if key is None:
        raise S3Error(
            "InvalidAccessKeyId",
            403,
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    secret = key.secret
    date = signed.amz_date[:8]  # botocore's scope takes the date from the timestamp too
    derived = key.signing_key(date, signed.region)
    expected = expected_signature(request, signed, secret, derived)
    if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
        raise signature_mismatch()
    refuse_unsigned_amz_headers(request, signed)
    payload = signed_payload(request, signed)
    if not payload:
        raise S3Error("InvalidRequest", 400, "x-amz-content-sha256 is required")
    chain = None  # a presigned request's chunk-signed body: 501 (``dfs.s3.bodies``)
    if payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER) and not signed.presigned:
        chain = ChunkChain(
            derived,
            signed.amz_date,
            f"{date}/{signed.region}/s3/aws4_request",
            expected,
        )
    return Caller(key.tenant, signed.access_key_id, payload, chain)
