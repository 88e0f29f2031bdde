"""S3 bucket calls (path-style): ListBuckets, CreateBucket, DeleteBucket, HeadBucket,
GetBucketLocation, ListObjectsV2. Other bucket calls (sub-resources such as ``?versioning``,
ListObjects v1, POST ``?delete``) go to the modules ``dfs.s3.subresources`` names, or
answer 501 NotImplemented.
ListMultipartUploads (``?uploads``) is ``dfs.s3.routes_multipart``'s.

| method | path       | call                                              |
|--------|------------|---------------------------------------------------|
| GET    | /          | ListBuckets (the caller's own buckets)            |
| PUT    | /{bucket}  | CreateBucket (a location constraint body is read and ignored) |
| DELETE | /{bucket}  | DeleteBucket (204)                                |
| HEAD   | /{bucket}  | HeadBucket                                        |
| GET    | /{bucket}  | ``?list-type=2``: ListObjectsV2; ``?location``: GetBucketLocation |
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from dfs.api import access
from dfs.errors import BucketExists
from dfs.meta.namespace import ObjectListing
from dfs.s3 import acl, subresources, xmlbody
from dfs.s3.context import (
    NAMESPACE,
    iso_time,
    params,
    principal,
    xml,
    xml_response,
)
from dfs.s3.errors import S3Error, not_implemented
from dfs.s3.names import bucket_name

MAX_KEYS = 1000
MAX_BUCKET_BODY = 64 * 1024
_LIST_PARAMS = frozenset(
    {
        "list-type",
        "prefix",
        "delimiter",
        "continuation-token",
        "max-keys",
        "encoding-type",
        "start-after",
        "fetch-owner",  # minio-go (restic) always asks; the owner is the bucket's tenant
    }
)


async def list_buckets(request: web.Request) -> web.Response:
    who = principal(request)
    owned = [b for b in await request.app[NAMESPACE].list_buckets(who) if b.tenant == who.tenant]
    items = "".join(
        f"<Bucket>{xml('Name', b.name)}{xml('CreationDate', iso_time(b.created_at))}</Bucket>"
        for b in owned
    )
    owner = f"<Owner>{xml('ID', who.tenant)}{xml('DisplayName', who.tenant)}</Owner>"
    return xml_response("ListAllMyBucketsResult", f"{owner}<Buckets>{items}</Buckets>")


KEPT_OWNERSHIP = "BucketOwnerPreferred"
"""The one ``x-amz-object-ownership`` that is what dfs does: the bucket's owner owns every
object in it (a grantee's too), and ACLs apply."""


def refuse_unkept_bucket_settings(request: web.Request) -> None:
    """501 for a CreateBucket asking for what the namespace does not keep: object lock (a
    bucket whose objects could be deleted at once, where the client asked for retention),
    or an object ownership other than ``KEPT_OWNERSHIP`` (``BucketOwnerEnforced`` turns
    ACLs off, which would still apply here; ``ObjectWriter`` leaves objects the writer's)."""
    h = request.headers
    if h.get("x-amz-bucket-object-lock-enabled", "false").strip().lower() != "false":
        raise not_implemented("CreateBucket with object lock")
    ownership = h.get("x-amz-object-ownership")
    if ownership is not None and ownership.strip() != KEPT_OWNERSHIP:
        raise not_implemented(f"CreateBucket with x-amz-object-ownership {ownership}")


async def create_bucket(request: web.Request) -> web.StreamResponse:
    if params(request):
        return await subresources.bucket_call(request)
    name = bucket_name(request)
    acl.refuse_grant_headers(request)
    refuse_unkept_bucket_settings(request)
    bucket_access = acl.canned(request.headers.get("x-amz-acl"))
    # a CreateBucketConfiguration names a region, and there is one: read (and checked), unused
    await xmlbody.read_body(request, MAX_BUCKET_BODY)
    ns = request.app[NAMESPACE]
    try:
        await ns.create_bucket(principal(request), name, None, bucket_access)
    except BucketExists:
        if (await ns.store.get_bucket(name)).tenant == principal(request).tenant:
            raise S3Error(
                "BucketAlreadyOwnedByYou",
                409,
                "Your previous request to create the named "
                "bucket succeeded and you already own it.",
            ) from None
        raise S3Error(
            "BucketAlreadyExists", 409, "The requested bucket name is not available."
        ) from None
    return web.Response(status=200, headers={"Location": f"/{name}"})


async def delete_bucket(request: web.Request) -> web.StreamResponse:
    if params(request):
        return await subresources.bucket_call(request)
    await request.app[NAMESPACE].delete_bucket(principal(request), bucket_name(request))
    return web.Response(status=204)


async def head_bucket(request: web.Request) -> web.Response:
    b = await request.app[NAMESPACE].bucket(bucket_name(request))
    if b.tenant != principal(request).tenant:
        access.require_list(principal(request), b)
    return web.Response(status=200, headers={"x-amz-bucket-region": "us-east-1"})


def _max_keys(raw: str | None) -> int:
    if raw is None:
        return MAX_KEYS
    if not raw.isascii() or not raw.isdigit():
        raise S3Error("InvalidArgument", 400, "max-keys must be a non-negative integer")
    return min(int(raw), MAX_KEYS)


def _listing_xml(
    name: str, q: dict[str, str], listing: ObjectListing, max_keys: int, url: bool, owner: str
) -> str:
    def enc(text: str) -> str:
        return quote(text, safe="/") if url else text

    parts = [xml("Name", name), xml("Prefix", enc(q.get("prefix", "")))]
    if q.get("delimiter"):
        parts.append(xml("Delimiter", enc(q["delimiter"])))
    parts += [
        xml("MaxKeys", max_keys),
        xml("KeyCount", len(listing.objects) + len(listing.common_prefixes)),
    ]
    if url:
        parts.append(xml("EncodingType", "url"))
    parts.append(xml("IsTruncated", "true" if listing.next_token else "false"))
    if q.get("continuation-token"):
        parts.append(xml("ContinuationToken", q["continuation-token"]))
    if q.get("start-after"):
        parts.append(xml("StartAfter", enc(q["start-after"])))
    if listing.next_token:
        parts.append(xml("NextContinuationToken", listing.next_token))
    for v in listing.objects:
        parts.append(
            f"<Contents>{xml('Key', enc(v.key))}{xml('LastModified', iso_time(v.created_at))}"
            f"{xml('ETag', chr(34) + v.etag + chr(34))}{xml('Size', v.size)}"
            f"{owner}{xml('StorageClass', 'STANDARD')}</Contents>"
        )
    for p in listing.common_prefixes:
        parts.append(f"<CommonPrefixes>{xml('Prefix', enc(p))}</CommonPrefixes>")
    return "".join(parts)


async def list_objects_v2(request: web.Request) -> web.Response:
    q = dict(params(request))
    unsupported = sorted(set(q) - _LIST_PARAMS)
    if unsupported:
        raise not_implemented(f"ListObjectsV2 with {', '.join(unsupported)}")
    encoding = q.get("encoding-type")
    if encoding not in (None, "url"):
        raise S3Error("InvalidArgument", 400, "Invalid Encoding Method specified in Request")
    name, max_keys = bucket_name(request), _max_keys(q.get("max-keys"))
    listing = ObjectListing()
    if max_keys == 0:  # no keys asked for: still only for a caller who may list them
        await request.app[NAMESPACE].visible_bucket(principal(request), name)
    else:
        listing = await request.app[NAMESPACE].listing(
            principal(request),
            name,
            prefix=q.get("prefix", ""),
            delimiter=q.get("delimiter", ""),
            token=q.get("continuation-token") or None,
            limit=max_keys,
            versions=False,
            start_after=q.get("start-after", ""),
        )
    owner = ""
    if q.get("fetch-owner") == "true":
        tenant = (await request.app[NAMESPACE].bucket(name)).tenant
        owner = f"<Owner>{xml('ID', tenant)}{xml('DisplayName', tenant)}</Owner>"
    return xml_response(
        "ListBucketResult", _listing_xml(name, q, listing, max_keys, bool(encoding), owner)
    )


async def get_bucket(request: web.Request) -> web.StreamResponse:
    q = params(request)
    if q.get("list-type") == "2":
        return await list_objects_v2(request)
    if set(q) == {"location"}:
        await request.app[NAMESPACE].visible_bucket(principal(request), bucket_name(request))
        return xml_response("LocationConstraint", "")
    return await subresources.bucket_call(request)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", list_buckets)
    for path in ("/{bucket}", "/{bucket}/"):
        r.add_put(path, create_bucket)
        r.add_delete(path, delete_bucket)
        r.add_head(path, head_bucket)
        r.add_get(path, get_bucket, allow_head=False)
        r.add_post(path, subresources.bucket_call)
