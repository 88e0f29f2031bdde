"""Deletes through S3: DeleteObject with an optional ``versionId`` and DeleteObjects
(``POST /{bucket}?delete``), on the namespace's delete (S3's rules: a delete marker where
versioning is on, the ``null`` version replaced by a marker where it is suspended, the
object removed where it is off; a ``versionId`` removes exactly that version or marker).

DeleteObjects takes up to 1000 keys, needs ``Content-MD5`` or an ``x-amz-checksum-*`` header
of its body (as S3 does: ``InvalidRequest`` without, ``BadDigest`` when it does not match),
answers every key's outcome (``Quiet``: only the errors) in one ``DeleteResult``; one key's
failure does not stop the others. Its keys are deleted ``DELETES_AT_ONCE`` at a time (the
entries of a key named twice one after another, in order).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib

from aiohttp import web

from dfs.api.bodies import Principal
from dfs.api.namespace_bodies import parse_key
from dfs.api.namespace_service import DELETES_AT_ONCE, Namespace
from dfs.bounded import gather_by_key
from dfs.errors import DfsError, InvalidRequest, KeyNotFound
from dfs.meta.namespace import ObjectVersion
from dfs.s3 import checksums, xmlbody
from dfs.s3.context import NAMESPACE, principal, xml, xml_response
from dfs.s3.errors import S3Error, from_dfs
from dfs.s3.names import bucket_name, target
from dfs.s3.object_reads import version_param

MAX_DELETE_KEYS = 1000


def _outcome(made: ObjectVersion | None, asked: str | None) -> dict[str, str]:
    """What S3 says of one delete: the version removed, or the delete marker made."""
    out = {"x-amz-version-id": asked} if asked else {}
    if made is not None and made.is_delete_marker:
        out = {"x-amz-delete-marker": "true", "x-amz-version-id": made.version_id}
    return out


async def delete_object(request: web.Request) -> web.Response:
    bucket, key = target(request)
    version = version_param(request)
    made = None
    with contextlib.suppress(KeyNotFound):  # S3 answers 204 for a key that is not there
        made = await request.app[NAMESPACE].delete(principal(request), bucket, key, version)
    return web.Response(status=204, headers=_outcome(made, version))


def _check_digest(request: web.Request, body: bytes) -> None:
    h = request.headers
    sums = checksums.Checksums.from_headers(h)
    md5 = h.get("Content-MD5")
    if md5 is None and not sums.declared:
        raise S3Error(
            "InvalidRequest", 400, "Missing required header for this request: Content-MD5"
        )
    if md5 is not None and md5 != base64.b64encode(hashlib.md5(body).digest()).decode():
        raise S3Error("BadDigest", 400, "The Content-MD5 you specified did not match the body")
    sums.update(body)
    sums.verify({})


def _parse(body: bytes) -> tuple[bool, list[tuple[str, str | None]]]:
    root = xmlbody.parse(body, "Delete")
    quiet = (xmlbody.text(root, "Quiet") or "false").strip().lower() == "true"
    items: list[tuple[str, str | None]] = []
    for o in xmlbody.children(root, "Object"):
        key = xmlbody.text(o, "Key")
        if key is None:
            raise xmlbody.malformed("each Object needs a Key")
        items.append((key, xmlbody.text(o, "VersionId") or None))
    if not items or len(items) > MAX_DELETE_KEYS:
        raise xmlbody.malformed(f"Delete takes 1 to {MAX_DELETE_KEYS} objects")
    return quiet, items


async def _delete_one(
    ns: Namespace, who: Principal, bucket: str, key: str, version: str | None
) -> str:
    """One key's ``Deleted`` or ``Error`` element."""
    ident = xml("Key", key) + (xml("VersionId", version) if version else "")
    try:
        made = await ns.delete(who, bucket, parse_key(key), version)
    except KeyNotFound:
        made = None
    except InvalidRequest as exc:
        return (
            f"<Error>{ident}{xml('Code', 'InvalidArgument')}{xml('Message', exc.message)}</Error>"
        )
    except DfsError as exc:
        err = from_dfs(exc)
        return f"<Error>{ident}{xml('Code', err.code)}{xml('Message', err.message)}</Error>"
    marker = ""
    if made is not None and made.is_delete_marker:
        marker = xml("DeleteMarker", "true") + xml("DeleteMarkerVersionId", made.version_id)
    return f"<Deleted>{ident}{marker}</Deleted>"


async def delete_objects(request: web.Request) -> web.Response:
    bucket = bucket_name(request)
    body = await xmlbody.read_body(request)
    _check_digest(request, body)
    quiet, items = _parse(body)
    ns, who = request.app[NAMESPACE], principal(request)
    await ns.bucket(bucket)  # NoSuchBucket for the whole request

    # many keys at once (the SQLite store commits those queued together in one
    # transaction), a key's entries one after another in the request's order (a suspended
    # bucket's delete and removal of the null version do not commute); answers in order
    parts: list[str] = [""] * len(items)

    async def one(i: int) -> None:
        parts[i] = await _delete_one(ns, who, bucket, *items[i])

    await gather_by_key(one, [key for key, _ in items], DELETES_AT_ONCE)
    kept = [p for p in parts if not (quiet and p.startswith("<Deleted>"))]
    return xml_response("DeleteResult", "".join(kept))
