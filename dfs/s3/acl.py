"""Bucket and object ACLs, mapped onto the namespace's access model (``dfs.api.access``).

What maps, both ways:

| S3 grant | namespace |
|---|---|
| the owner's ``FULL_CONTROL`` | the bucket's tenant (always) |
| ``AllUsers`` ``READ`` on a bucket | bucket access ``public-read`` (every object readable too) |
| a tenant's (``CanonicalUser`` id = tenant) ``READ`` on a bucket; ``READ`` and ``WRITE`` | a grant ``read``; ``read-write`` |
| ``AllUsers`` ``READ`` on an object | object access ``public-read`` |
| a tenant's ``READ`` on an object | object access ``shared``, the tenant in ``shared_with`` |

Writes: the canned ACLs ``private`` and ``public-read`` (``x-amz-acl``, also on PutObject
and CopyObject), or an ``AccessControlPolicy`` body of grants from the table. A canned ACL
replaces the whole ACL, as in S3 (``private`` on a bucket also drops its tenant grants).
Anything else (other canned ACLs, ``x-amz-grant-*`` headers, ``READ_ACP``/``WRITE_ACP``,
groups other than ``AllUsers``, e-mail grantees) answers 501 ``NotImplemented``: the
namespace cannot keep it, and a silent partial mapping would be a wrong success. Reading an
ACL needs read access; changing one is the bucket owner's (``dfs.api.access``). A bucket ACL
grants at most ``MAX_GRANTS`` tenants (400 ``InvalidRequest`` beyond), as the API's grants.

A ``public-read`` bucket is wider than S3's bucket ``READ``: anyone reads every object in it,
whatever the object's ACL, which only adds readers (``dfs.api.access``, docs/S3.md).
"""

from __future__ import annotations

from aiohttp import web

from dfs.api import access
from dfs.api.namespace_bodies import MAX_GRANTS, ObjectFields
from dfs.meta.namespace import (
    ACCESS_PRIVATE,
    ACCESS_PUBLIC_READ,
    ACCESS_SHARED,
    GRANT_READ,
    GRANT_READ_WRITE,
    BucketRecord,
)
from dfs.s3 import xmlbody
from dfs.s3.context import NAMESPACE, principal, xml, xml_response
from dfs.s3.errors import S3Error, not_implemented
from dfs.s3.names import bucket_name, target
from dfs.s3.object_reads import resolve, version_headers, version_param

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CANNED = (ACCESS_PRIVATE, ACCESS_PUBLIC_READ)
Grants = list[tuple[str, str]]  # (tenant id or ALL_USERS, permission)


def canned(value: str | None) -> str | None:
    """The namespace access of an ``x-amz-acl`` header (None when absent); 501 otherwise."""
    if value is None:
        return None
    if value not in CANNED:
        raise not_implemented(f"the canned ACL {value!r} (private and public-read map)")
    return value


def refuse_grant_headers(request: web.Request) -> None:
    for name in request.headers:
        if name.lower().startswith("x-amz-grant-"):
            raise not_implemented(f"ACL grants in headers ({name})")


def _grant_xml(grantee: str, permission: str) -> str:
    if grantee == ALL_USERS:
        who = f'<Grantee xmlns:xsi="{XSI}" xsi:type="Group">{xml("URI", ALL_USERS)}</Grantee>'
    else:
        who = (
            f'<Grantee xmlns:xsi="{XSI}" xsi:type="CanonicalUser">'
            f"{xml('ID', grantee)}{xml('DisplayName', grantee)}</Grantee>"
        )
    return f"<Grant>{who}{xml('Permission', permission)}</Grant>"


def _policy(owner: str, grants: Grants) -> web.Response:
    inner = f"<Owner>{xml('ID', owner)}{xml('DisplayName', owner)}</Owner>"
    inner += "<AccessControlList>" + _grant_xml(owner, "FULL_CONTROL")
    inner += "".join(_grant_xml(g, p) for g, p in grants) + "</AccessControlList>"
    return xml_response("AccessControlPolicy", inner)


def _bucket_grants(b: BucketRecord) -> Grants:
    out: Grants = [(ALL_USERS, "READ")] if b.access == ACCESS_PUBLIC_READ else []
    for tenant, grant in b.grants:
        out.append((tenant, "READ"))
        if grant == GRANT_READ_WRITE:
            out.append((tenant, "WRITE"))
    return out


def _read_policy(root_data: bytes, owner: str) -> Grants:
    """The grants of an AccessControlPolicy body, the owner's FULL_CONTROL left out."""
    root = xmlbody.parse(root_data, "AccessControlPolicy")
    lists = xmlbody.children(root, "AccessControlList")
    if len(lists) != 1:
        raise xmlbody.malformed("AccessControlPolicy needs one AccessControlList")
    out: Grants = []
    for g in xmlbody.children(lists[0], "Grant"):
        grantees = xmlbody.children(g, "Grantee")
        permission = xmlbody.text(g, "Permission") or ""
        if len(grantees) != 1:
            raise xmlbody.malformed("each Grant needs a Grantee")
        uri, ident = xmlbody.text(grantees[0], "URI"), xmlbody.text(grantees[0], "ID")
        if uri == ALL_USERS and permission == "READ":
            out.append((ALL_USERS, "READ"))
        elif ident and ident == owner and permission == "FULL_CONTROL":
            continue
        elif ident and ident != owner and permission in ("READ", "WRITE"):
            out.append((ident, permission))
        else:
            raise not_implemented(f"the ACL grant {uri or ident or '?'} {permission}")
    return out


async def _requested(request: web.Request, owner: str) -> Grants:
    """The grants a PutBucketAcl/PutObjectAcl asks for: canned header or body."""
    refuse_grant_headers(request)
    acl = canned(request.headers.get("x-amz-acl"))
    body = await xmlbody.read_body(request)
    if acl is not None:
        if body.strip():
            raise S3Error("UnexpectedContent", 400, "This request does not support content")
        return [(ALL_USERS, "READ")] if acl == ACCESS_PUBLIC_READ else []
    if not body.strip():
        raise S3Error("MissingSecurityHeader", 400, "Your request was missing a required header")
    return _read_policy(body, owner)


async def get_bucket_acl(request: web.Request) -> web.Response:
    """The owner's alone (S3's READ_ACP): the policy names the tenants it is shared with."""
    who = principal(request)
    b = await request.app[NAMESPACE].visible_bucket(who, bucket_name(request))
    access.require_owner(who, b)
    return _policy(b.tenant, _bucket_grants(b))


def bucket_access(grants: Grants) -> tuple[bool, list[tuple[str, str]]]:
    """A bucket ACL's grants as the namespace keeps them: public-read or not, and each
    tenant's grant; 501 for what does not map, 400 beyond ``MAX_GRANTS`` tenants."""
    perms: dict[str, set[str]] = {}
    for g, p in grants:
        perms.setdefault(g, set()).add(p)
    public = perms.pop(ALL_USERS, None) is not None
    tenant_grants = []
    for tenant, ps in sorted(perms.items()):
        if ps == {"READ"}:
            tenant_grants.append((tenant, GRANT_READ))
        elif ps == {"READ", "WRITE"}:
            tenant_grants.append((tenant, GRANT_READ_WRITE))
        else:
            raise not_implemented("WRITE without READ for a tenant")
    if len(tenant_grants) > MAX_GRANTS:
        raise S3Error("InvalidRequest", 400, f"a bucket ACL may grant at most {MAX_GRANTS} tenants")
    return public, tenant_grants


async def put_bucket_acl(request: web.Request) -> web.Response:
    ns, who = request.app[NAMESPACE], principal(request)
    b = await ns.bucket(bucket_name(request))
    access.require_owner(who, b)
    public, tenant_grants = bucket_access(await _requested(request, b.tenant))
    await ns.update_bucket(
        who,
        b.name,
        versioning=None,
        bucket_access=ACCESS_PUBLIC_READ if public else ACCESS_PRIVATE,
        grants=tenant_grants,
    )
    return web.Response(status=200)


async def get_object_acl(request: web.Request) -> web.Response:
    version = version_param(request)
    r = await resolve(request.app[NAMESPACE], request, version)
    # the owner's alone (S3's READ_ACP): a reader of the object must not learn whom else
    # it is shared with
    access.require_owner(principal(request), r.bucket)
    v = r.version
    grants: Grants = [(ALL_USERS, "READ")] if v.access == ACCESS_PUBLIC_READ else []
    if v.access == ACCESS_SHARED:
        grants += [(t, "READ") for t in v.shared_with]
    resp = _policy(r.bucket.tenant, grants)
    resp.headers.update(version_headers(r.bucket, v, version is not None))
    return resp


async def put_object_acl(request: web.Request) -> web.Response:
    bucket, key = target(request)
    version = version_param(request)
    ns = request.app[NAMESPACE]
    b = await ns.bucket(bucket)
    # before the policy is read against the owner's id: its answers told a caller with no
    # access whether a guessed id was the bucket's owner
    access.require_owner(principal(request), b)
    grants = await _requested(request, b.tenant)
    if any(p != "READ" for _, p in grants):
        raise not_implemented("object ACL grants other than READ")
    public = any(g == ALL_USERS for g, _ in grants)
    tenants = sorted(g for g, _ in grants if g != ALL_USERS)
    if public and tenants:
        raise not_implemented("an object both public-read and shared with tenants")
    acc = ACCESS_PUBLIC_READ if public else ACCESS_SHARED if tenants else ACCESS_PRIVATE
    v = await ns.update_object(
        principal(request), bucket, key, version, ObjectFields(access=acc), tenants
    )
    return web.Response(status=200, headers=version_headers(b, v, version is not None))
