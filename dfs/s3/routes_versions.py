"""Versioning through S3: Get/PutBucketVersioning (``?versioning``) and ListObjectVersions
(``?versions``), mapped onto the namespace's versioning (S3's states: a bucket never
versioned answers an empty configuration; ``Enabled`` and ``Suspended`` as S3; going back
to never-versioned does not exist in S3 either).

ListObjectVersions: ``prefix``, ``delimiter``, ``key-marker`` (keys after it),
``version-id-marker`` (with ``key-marker``: that key's versions after this one, then the
keys after it; found by its place, so one deleted since the last page skips none), ``max-keys`` (at most 1000), ``encoding-type=url``; versions and delete
markers in key order and, within a key, newest first (the namespace's order). MFA delete
answers 501.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from dfs.api.bodies import Principal
from dfs.api.namespace_service import Namespace
from dfs.meta.namespace import (
    VERSIONING_ENABLED,
    VERSIONING_SUSPENDED,
    ObjectListing,
    version_position,
)
from dfs.s3 import xmlbody
from dfs.s3.context import NAMESPACE, iso_time, owned_bucket, params, principal, xml, xml_response
from dfs.s3.errors import S3Error, not_implemented
from dfs.s3.listing import Entry, Page, encoder, max_keys, page_after
from dfs.s3.names import bucket_name

_STATUS = {VERSIONING_ENABLED: "Enabled", VERSIONING_SUSPENDED: "Suspended"}
_STATE = {"Enabled": VERSIONING_ENABLED, "Suspended": VERSIONING_SUSPENDED}
PARAMS = frozenset(
    {"versions", "prefix", "delimiter", "key-marker", "version-id-marker", "max-keys"}
    | {"encoding-type"}
)


async def get_bucket_versioning(request: web.Request) -> web.Response:
    b = await owned_bucket(request)
    status = _STATUS.get(b.versioning)
    return xml_response("VersioningConfiguration", xml("Status", status) if status else "")


async def put_bucket_versioning(request: web.Request) -> web.Response:
    name = bucket_name(request)
    root = xmlbody.parse(await xmlbody.read_body(request), "VersioningConfiguration")
    if (xmlbody.text(root, "MfaDelete") or "Disabled") != "Disabled":
        raise not_implemented("MFA delete")
    status = xmlbody.text(root, "Status")
    if status not in _STATE:
        raise xmlbody.malformed("Status must be Enabled or Suspended")
    ns = request.app[NAMESPACE]
    await ns.update_bucket(
        principal(request), name, versioning=_STATE[status], bucket_access=None, grants=None
    )
    return web.Response(status=200)


async def _rest_of_key(
    ns: Namespace, who: Principal, name: str, key: str, after_version: str, limit: int
) -> list[Entry]:
    """The versions of ``key`` after ``after_version`` (newest first), at most ``limit + 1``.
    By position, not by finding it: the marker version may be gone since the last page (a
    client deleting each page before asking the next), and its older versions still
    follow it. A numbered id tells its place (``version_position``); ``null`` does not,
    so a ``null`` version next to a gone marker is listed (again, maybe) rather than
    skipped, and when a ``null`` marker itself is gone the key is listed from its start."""
    mark = version_position(after_version)
    out: list[Entry] = []
    settled, token = False, None  # settled: no later version can be before the marker
    while not (settled and len(out) > limit):
        page = await ns.listing(
            who, name, prefix=key, delimiter="", token=token, limit=100, versions=True
        )
        for v in page.objects:
            if v.key != key:
                return out
            at = version_position(v.version_id)
            if v.version_id == after_version or (mark and at and at < mark):
                out, settled = [], v.version_id == after_version
            elif len(out) <= limit:
                out.append(v)
            settled = settled or bool(mark and at and at > mark)
        token = page.next_token
        if token is None:
            break
    return out


async def _versions_page(
    ns: Namespace, who: Principal, name: str, q: dict[str, str], limit: int
) -> Page:
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, vid_marker = q.get("key-marker", ""), q.get("version-id-marker", "")

    async def lister(after: str, n: int) -> ObjectListing:
        return await ns.listing(
            who,
            name,
            prefix=prefix,
            delimiter=delimiter,
            token=None,
            limit=n,
            versions=True,
            start_after=after,
        )

    head: list[Entry] = []
    if key_marker and vid_marker and key_marker.startswith(prefix):
        head = await _rest_of_key(ns, who, name, key_marker, vid_marker, limit)
        if len(head) > limit:
            return Page(head[:limit], True)
    rest = await page_after(lister, key_marker, prefix, delimiter, limit - len(head))
    return Page(head + rest.entries, rest.truncated)


def _entry_xml(e: Entry, enc: Callable[[str], str], owner: str) -> str:
    if isinstance(e, str):
        return f"<CommonPrefixes>{xml('Prefix', enc(e))}</CommonPrefixes>"
    common = (
        f"{xml('Key', enc(e.key))}{xml('VersionId', e.version_id)}"
        f"{xml('IsLatest', 'true' if e.is_latest else 'false')}"
        f"{xml('LastModified', iso_time(e.created_at))}"
    )
    if e.is_delete_marker:
        return f"<DeleteMarker>{common}{owner}</DeleteMarker>"
    return (
        f"<Version>{common}{xml('ETag', chr(34) + e.etag + chr(34))}{xml('Size', e.size)}"
        f"{xml('StorageClass', 'STANDARD')}{owner}</Version>"
    )


async def list_object_versions(request: web.Request) -> web.Response:
    q = params(request)
    unsupported = sorted(set(q) - PARAMS)
    if unsupported:
        raise not_implemented(f"ListObjectVersions with {', '.join(unsupported)}")
    if q.get("version-id-marker") and not q.get("key-marker"):
        raise S3Error(
            "InvalidArgument", 400, "A version-id marker cannot be specified without a key marker."
        )
    enc = encoder(q.get("encoding-type"))
    name, limit = bucket_name(request), max_keys(q.get("max-keys"))
    ns, who = request.app[NAMESPACE], principal(request)
    b = await ns.visible_bucket(who, name)
    page = await _versions_page(ns, who, name, q, limit) if limit else Page([], False)
    parts = [
        xml("Name", name),
        xml("Prefix", enc(q.get("prefix", ""))),
        xml("KeyMarker", enc(q.get("key-marker", ""))),
        xml("VersionIdMarker", q.get("version-id-marker", "")),
    ]
    if page.truncated and page.entries:
        last = page.entries[-1]
        parts.append(xml("NextKeyMarker", enc(page.next_marker)))
        if not isinstance(last, str):
            parts.append(xml("NextVersionIdMarker", last.version_id))
    parts.append(xml("MaxKeys", limit))
    if q.get("delimiter"):
        parts.append(xml("Delimiter", enc(q["delimiter"])))
    if q.get("encoding-type"):
        parts.append(xml("EncodingType", "url"))
    parts.append(xml("IsTruncated", "true" if page.truncated else "false"))
    owner = f"<Owner>{xml('ID', b.tenant)}{xml('DisplayName', b.tenant)}</Owner>"
    parts += [_entry_xml(e, enc, owner) for e in page.entries]
    return xml_response("ListVersionsResult", "".join(parts))
