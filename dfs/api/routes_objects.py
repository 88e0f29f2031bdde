"""The namespace's object routes: parse HTTP, call ``dfs.api.namespace_service``, answer.

| method | path                          | answer                                           |
|--------|-------------------------------|--------------------------------------------------|
| PUT    | /objects/{bucket}/{key}       | link ``{file_id? or sha256? (manifest_sha256?), content_type?, metadata?, tags?, access?, unless_current?}``: 201 ``{"object", "released_file_id"}`` (200: ``unless_current`` found it linked) |
| GET    | /objects/{bucket}/{key}       | the bytes (``?version=``, Range), verified chunk by chunk; HEAD the headers |
| DELETE | /objects/{bucket}/{key}       | ``?version=&unless_deleted=&if_latest=``: ``{"deleted": key, "version": the marker or removed version}`` |
| POST   | /objects-remove               | ``{bucket, versions: [{key, version, if_latest?}]}``: each version removed, ``{"versions": [{"deleted", "version"} or {"key", "error"}]}`` |
| GET    | /object-info/{bucket}/{key}   | the version's metadata (``?version=``)           |
| PATCH  | /object-info/{bucket}/{key}   | ``{version?, tags?, access?, shared_with?, content_type?, metadata?}`` |
| GET    | /object-url/{bucket}/{key}    | a signed URL for the version (``?version=&ttl=``) |
| POST   | /objects-copy                 | ``{src_bucket, src_key, dst_bucket, dst_key, version?, recursive?, move?}``: metadata only |
| POST   | /objects-restore              | ``{bucket, key, version}``: a copy of that version becomes current |
| POST   | /objects-link                 | ``{bucket, unless_current?, objects: [{key, file_id?, content_type?, metadata?, tags?, access?}]}`` (1-1000): ``{"objects": [{"object", "released_file_id", "made"} or {"key", "error"}]}`` |

Object bytes served here are user content: ``Content-Disposition: attachment``, nosniff and
the sandbox CSP always (``dfs.api.user_content``). Reads without a token are allowed for
public-read buckets and objects only; everything refused answers 404 as missing keys do.
A version's ``shared_with`` (whom the owner shared it with) is the bucket owner's to see: in
answers to a read-write grantee's writes, as in its reads, it is empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from dfs import protocol
from dfs.api.access import is_owner
from dfs.api.bodies import Principal
from dfs.api.context import (
    COORDINATOR,
    NAMESPACE,
    big_body_slot,
    caller,
    in_body_slot,
    principal,
    stored_file,
)
from dfs.api.file_stream import base_name, disposition, stream_file
from dfs.api.ingest import download_cap
from dfs.api.namespace_bodies import (
    NAMESPACE_BODY,
    ObjectFields,
    object_body,
    parse_bucket_name,
    parse_key,
    parse_tenants,
    query_int,
)
from dfs.api.namespace_service import Resolved
from dfs.api.object_links import LinkEntry, link_many
from dfs.api.version_removals import VersionRemoval, remove_versions
from dfs.errors import BucketNotFound, ContentNotStored, DfsError, FileNotFound, InvalidRequest
from dfs.ids import parse_file_id, parse_sha256
from dfs.meta.namespace import NULL_VERSION, ObjectVersion, PutResult
from dfs.server import json_response, read_json

MAX_URL_TTL = 7 * 24 * 3600  # S3's longest presigned URL (the cluster's cap_ttl may be less)
DEFAULT_URL_TTL = 15 * 60


def _target(request: web.Request) -> tuple[str, str]:
    return parse_bucket_name(request.match_info["bucket"]), parse_key(request.match_info["key"])


def _version(request: web.Request) -> str | None:
    return request.query.get("version") or None


async def _for_owner(
    request: web.Request, who: Principal, versions: Iterable[ObjectVersion | None]
) -> bool:
    """Whether a write's answer may name the tenants its versions (of one bucket) are shared
    with: only to the bucket's owner, as ``object_info`` and listings show them. A read-write
    grantee's writes answer without them. The bucket is read only for a shared version."""
    shared = [v for v in versions if v is not None and v.shared_with]
    if not shared:
        return True
    try:
        return is_owner(who, await request.app[NAMESPACE].bucket(shared[0].bucket))
    except BucketNotFound:  # deleted since the write: nobody's to see
        return False


def _headers(v: ObjectVersion) -> dict[str, str]:
    headers = {
        "ETag": f'"{v.etag}"',
        "X-Dfs-Version-Id": v.version_id,
        "X-Dfs-File-Id": v.file_id,
    }
    headers.update({f"X-Dfs-Meta-{k}": val for k, val in v.user_metadata if val.isprintable()})
    return headers


@in_body_slot
async def put_object(request: web.Request) -> web.Response:
    bucket, key = _target(request)
    body = await read_json(request, NAMESPACE_BODY)
    file_id = "" if body.get("file_id") in (None, "") else parse_file_id(body["file_id"])
    fields, ns = ObjectFields.parse(body), request.app[NAMESPACE]
    once = _flag(body, "unless_current")
    who = principal(request)
    if body.get("sha256") is None:
        if body.get("manifest_sha256") is not None:
            raise InvalidRequest("manifest_sha256 goes with sha256")
        done = await ns.link(who, bucket, key, file_id, fields, unless_current=once)
    elif once:
        raise InvalidRequest("unless_current goes with file_id (or an empty object), not sha256")
    else:
        done = await _put_known(request, bucket, key, body, fields, bool(file_id))
    mine = await _for_owner(request, who, [done.version])
    answer = {"object": object_body(done.version, mine), "released_file_id": done.released_file_id}
    return json_response(answer, status=201 if done.made else 200)


async def _put_known(
    request: web.Request,
    bucket: str,
    key: str,
    body: dict[str, Any],
    fields: ObjectFields,
    with_file_id: bool,
) -> PutResult:
    """``PUT /objects`` by content (``sha256``, optional ``manifest_sha256``): a version of
    bytes the caller's tenant stores already, in a file record of its own (no byte sent,
    none handed over: ``Namespace.link_copy``); 404 ``content_not_stored`` when none is
    found to hold them."""
    if with_file_id:
        raise InvalidRequest("give file_id or sha256, not both")
    sha256 = parse_sha256(body["sha256"])
    ns = request.app[NAMESPACE]
    b = await ns.require_writable(principal(request), bucket)  # 403/404 before any lookup
    rec = await stored_file(request, sha256, body.get("manifest_sha256"))
    gone = ContentNotStored(f"no stored file of yours holds the bytes of sha256 {sha256}")
    if rec is None:
        raise gone
    try:
        return await ns.link_copy(principal(request), bucket, key, rec, fields, read=b)
    except FileNotFound:  # deleted since it was found: as if never found (the caller uploads)
        raise gone from None


async def _empty(request: web.Request, r: Resolved) -> web.StreamResponse:
    resp = web.Response(body=b"", content_type="application/octet-stream")
    resp.headers.update(_headers(r.version))
    resp.headers["Content-Disposition"] = disposition(r.version.key.rstrip("/") or "empty")
    return resp


async def get_object(request: web.Request) -> web.StreamResponse:
    bucket, key = _target(request)
    r = await request.app[NAMESPACE].resolve(caller(request), bucket, key, _version(request))
    if not r.version.file_id:
        return await _empty(request, r)
    coord = request.app[COORDINATOR]
    rec = await coord.get_complete_file(r.version.file_id, r.bucket.tenant)
    return await stream_file(
        request,
        coord,
        rec,
        name=key,
        content_type=r.version.content_type,
        extra=_headers(r.version),
    )


async def delete_object(request: web.Request) -> web.Response:
    bucket, key = _target(request)
    once = request.query.get("unless_deleted", "false")
    if once not in ("true", "false"):
        raise InvalidRequest("unless_deleted must be true or false")
    if_latest = request.query.get("if_latest") or None
    if if_latest is not None and _version(request) is None:
        raise InvalidRequest("if_latest goes with a version to remove")
    if if_latest == NULL_VERSION:  # rewritten in place by every write: it names no one write
        raise InvalidRequest("if_latest takes a numbered version, not null")
    who = principal(request)
    gone = await request.app[NAMESPACE].delete(
        who,
        bucket,
        key,
        _version(request),
        unless_deleted=once == "true",
        if_latest=if_latest,
    )
    mine = await _for_owner(request, who, [gone])
    return json_response({"deleted": key, "version": object_body(gone, mine) if gone else None})


async def object_info(request: web.Request) -> web.Response:
    bucket, key = _target(request)
    who = caller(request)
    r = await request.app[NAMESPACE].resolve(who, bucket, key, _version(request))
    return json_response(object_body(r.version, is_owner(who, r.bucket)))


@in_body_slot
async def update_object(request: web.Request) -> web.Response:
    bucket, key = _target(request)
    body = await read_json(request, NAMESPACE_BODY)
    version = body.get("version")
    if version is not None and not isinstance(version, str):
        raise InvalidRequest("version must be a string")
    shared = None if body.get("shared_with") is None else parse_tenants(body["shared_with"])
    who = principal(request)
    v = await request.app[NAMESPACE].update_object(
        who, bucket, key, version or None, ObjectFields.parse(body), shared
    )
    return json_response(object_body(v, await _for_owner(request, who, [v])))


def _ttl(request: web.Request, cap: int) -> int:
    raw = request.query.get("ttl", str(min(DEFAULT_URL_TTL, cap)))
    return query_int(raw, "ttl (seconds)", 1, cap)


async def object_url(request: web.Request) -> web.Response:
    """A signed URL for one version: the seed's ``/signed-download/{file_id}`` of the file
    that version links, signed for the bucket owner's tenant (whose file it is)."""
    bucket, key = _target(request)
    r = await request.app[NAMESPACE].resolve(principal(request), bucket, key, _version(request))
    if not r.version.file_id:
        raise InvalidRequest("an empty object has no bytes to sign a URL for")
    coord = request.app[COORDINATOR]
    ttl = _ttl(request, min(MAX_URL_TTL, max(int(coord.cfg.cap_ttl), 1)))
    # the link answers with the key's name, as GET /objects does: the file's own name (the
    # uploader's local file name) is not the owner's to publish through a share link
    name = base_name(key)
    sig = download_cap(coord, r.version.file_id, r.bucket.tenant, ttl, name)
    url = request.app.router["signed-download"].url_for(file_id=r.version.file_id)
    url = url.with_query({"tenant": r.bucket.tenant, "sig": sig, "name": name})
    base = coord.cfg.public_url or str(request.url.origin())
    return json_response(
        {
            "download_url": f"{base}{url}",
            "bucket": bucket,
            "key": key,
            "version_id": r.version.version_id,
            "size": r.version.size,
            "expires_at": int(sig.partition(".")[0]),
        }
    )


def _flag(body: dict[str, object], field: str) -> bool:
    value = body.get(field, False)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{field} must be true or false")
    return value


@in_body_slot
async def copy_objects(request: web.Request) -> web.Response:
    body = await read_json(request, NAMESPACE_BODY)
    recursive = _flag(body, "recursive")
    src = (parse_bucket_name(body.get("src_bucket")), body.get("src_key") or "")
    dst = (parse_bucket_name(body.get("dst_bucket")), body.get("dst_key") or "")
    if not recursive or src[1]:
        src = (src[0], parse_key(src[1], "src_key"))
    if not recursive or dst[1]:
        dst = (dst[0], parse_key(dst[1], "dst_key"))
    version = body.get("version")
    if version is not None and not isinstance(version, str):
        raise InvalidRequest("version must be a string")
    who = principal(request)
    made = await request.app[NAMESPACE].copy(
        who,
        src,
        dst,
        version=version or None,
        recursive=recursive,
        move=_flag(body, "move"),
    )
    mine = await _for_owner(request, who, made)
    return json_response({"objects": [object_body(v, mine) for v in made]})


@in_body_slot
async def restore_object(request: web.Request) -> web.Response:
    body = await read_json(request, NAMESPACE_BODY)
    bucket, key = parse_bucket_name(body.get("bucket")), parse_key(body.get("key"))
    version = body.get("version")
    if not isinstance(version, str) or not version:
        raise InvalidRequest("version is required")
    who = principal(request)
    done = await request.app[NAMESPACE].restore(who, bucket, key, version)
    return json_response(
        {"object": object_body(done.version, await _for_owner(request, who, [done.version]))}
    )


def _link_entry(i: int, entry: object) -> LinkEntry | DfsError:
    """One entry of ``/objects-link``, or the error that is its answer."""
    if not isinstance(entry, dict):
        return InvalidRequest(f"objects[{i}] must be an object")
    try:
        if entry.get("sha256") is not None:
            raise InvalidRequest("link by file_id here; by sha256 with PUT /objects")
        file_id = entry.get("file_id")
        parsed = "" if file_id in (None, "") else parse_file_id(file_id)
        return LinkEntry(parse_key(entry.get("key")), parsed, ObjectFields.parse(entry))
    except DfsError as exc:
        return exc


def _entry_key(item: object) -> str:
    key = item.get("key") if isinstance(item, dict) else None
    return key if isinstance(key, str) else ""


async def link_objects(request: web.Request) -> web.Response:
    """``PUT /objects``' link for many keys of one bucket (``dfs.api.object_links``)."""
    async with big_body_slot(request):  # up to 1000 entries: a big body, held in a slot
        return await _link_objects(request, await read_json(request, protocol.MAX_JSON_BODY))


async def _link_objects(request: web.Request, body: dict[str, Any]) -> web.Response:
    bucket, once = parse_bucket_name(body.get("bucket")), _flag(body, "unless_current")
    items = body.get("objects")
    if not isinstance(items, list) or not 0 < len(items) <= protocol.MAX_BATCH_FILES:
        raise InvalidRequest(f"objects must be a list of 1-{protocol.MAX_BATCH_FILES} entries")
    entries = [_link_entry(i, e) for i, e in enumerate(items)]
    ns, who = request.app[NAMESPACE], principal(request)
    done = await link_many(ns, who, bucket, entries, unless_current=once)
    mine = await _for_owner(request, who, [d.version for d in done if isinstance(d, PutResult)])
    answers = [
        {"key": _entry_key(items[i]), **d.to_body()}
        if isinstance(d, DfsError)
        else {
            "object": object_body(d.version, mine),
            "released_file_id": d.released_file_id,
            "made": d.made,
        }
        for i, d in enumerate(done)
    ]
    return json_response({"objects": answers})


def _removal(i: int, entry: object) -> VersionRemoval | DfsError:
    """One entry of ``/objects-remove``, or the error that is its answer."""
    if not isinstance(entry, dict):
        return InvalidRequest(f"versions[{i}] must be an object")
    try:
        version, if_latest = entry.get("version"), entry.get("if_latest")
        if not isinstance(version, str) or not version:
            raise InvalidRequest("each entry names its version")
        if if_latest is not None and (not isinstance(if_latest, str) or not if_latest):
            raise InvalidRequest("if_latest must be a version id")
        if if_latest == NULL_VERSION:  # as on DELETE /objects: null names no one write
            raise InvalidRequest("if_latest takes a numbered version, not null")
        return VersionRemoval(parse_key(entry.get("key")), version, if_latest)
    except DfsError as exc:
        return exc


async def remove_objects(request: web.Request) -> web.Response:
    """``DELETE /objects/...?version=`` for many versions of one bucket
    (``dfs.api.version_removals``)."""
    async with big_body_slot(request):  # up to 1000 entries: a big body, held in a slot
        return await _remove_objects(request, await read_json(request, protocol.MAX_JSON_BODY))


async def _remove_objects(request: web.Request, body: dict[str, Any]) -> web.Response:
    bucket, items = parse_bucket_name(body.get("bucket")), body.get("versions")
    if not isinstance(items, list) or not 0 < len(items) <= protocol.MAX_BATCH_FILES:
        raise InvalidRequest(f"versions must be a list of 1-{protocol.MAX_BATCH_FILES} entries")
    entries = [_removal(i, e) for i, e in enumerate(items)]
    who = principal(request)
    done = await remove_versions(request.app[NAMESPACE], who, bucket, entries)
    mine = await _for_owner(request, who, [d for d in done if not isinstance(d, DfsError)])
    answers = [
        {"key": _entry_key(items[i]), **d.to_body()}
        if isinstance(d, DfsError)
        else {"deleted": _entry_key(items[i]), "version": object_body(d, mine) if d else None}
        for i, d in enumerate(done)
    ]
    return json_response({"versions": answers})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_put(protocol.OBJECT, put_object)
    r.add_get(protocol.OBJECT, get_object)  # also HEAD
    r.add_delete(protocol.OBJECT, delete_object)
    r.add_get(protocol.OBJECT_INFO, object_info)
    r.add_patch(protocol.OBJECT_INFO, update_object)
    r.add_get(protocol.OBJECT_URL, object_url)
    r.add_post(protocol.OBJECTS_COPY, copy_objects)
    r.add_post(protocol.OBJECTS_RESTORE, restore_object)
    r.add_post(protocol.OBJECTS_LINK, link_objects)
    r.add_post(protocol.OBJECTS_REMOVE, remove_objects)
