"""Object tagging through S3: Get/Put/DeleteObjectTagging (``?tagging`` on an object, with
an optional ``versionId``) and the ``x-amz-tagging`` header of PutObject, mapped onto the
namespace's tags (changed in place on one version: tags are not versioned in S3).

S3's limits (``dfs.namespace_rules.validate_tags``): at most 10 tags, keys of 1-128 and
values of 0-256 characters, distinct keys; a breach answers 400 ``InvalidTag``. Reading
needs read access, writing write access (``dfs.api.access``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web

from dfs import namespace_rules
from dfs.api.namespace_bodies import ObjectFields
from dfs.errors import InvalidRequest
from dfs.s3 import xmlbody
from dfs.s3.context import NAMESPACE, principal, xml, xml_response
from dfs.s3.errors import S3Error
from dfs.s3.names import target
from dfs.s3.object_reads import resolve, version_headers, version_param


def invalid_tag(message: str) -> S3Error:
    return S3Error("InvalidTag", 400, message)


def validated(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    try:
        return namespace_rules.validate_tags(pairs)
    except InvalidRequest as exc:
        raise invalid_tag(exc.message) from None


def tagging_header(value: str | None) -> tuple[tuple[str, str], ...] | None:
    """PutObject's ``x-amz-tagging`` (``k1=v1&k2=v2``, URL-encoded); None when absent."""
    if value is None:
        return None
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=bool(value))
    except ValueError:
        raise invalid_tag("x-amz-tagging must be a URL-encoded query string") from None
    return validated(pairs)


async def get_object_tagging(request: web.Request) -> web.Response:
    version = version_param(request)
    r = await resolve(request.app[NAMESPACE], request, version)
    tags = "".join(f"<Tag>{xml('Key', k)}{xml('Value', v)}</Tag>" for k, v in r.version.tags)
    resp = xml_response("Tagging", f"<TagSet>{tags}</TagSet>")
    resp.headers.update(version_headers(r.bucket, r.version, version is not None))
    return resp


async def _set_tags(
    request: web.Request, tags: tuple[tuple[str, str], ...], status: int
) -> web.Response:
    bucket, key = target(request)
    version = version_param(request)
    ns = request.app[NAMESPACE]
    b = await ns.bucket(bucket)
    v = await ns.update_object(
        principal(request), bucket, key, version, ObjectFields(tags=tags), None
    )
    return web.Response(status=status, headers=version_headers(b, v, version is not None))


async def put_object_tagging(request: web.Request) -> web.Response:
    root = xmlbody.parse(await xmlbody.read_body(request), "Tagging")
    sets = xmlbody.children(root, "TagSet")
    if len(sets) != 1:
        raise xmlbody.malformed("Tagging needs one TagSet")
    pairs = []
    for tag in xmlbody.children(sets[0], "Tag"):
        key, value = xmlbody.text(tag, "Key"), xmlbody.text(tag, "Value")
        if key is None or value is None:
            raise xmlbody.malformed("each Tag needs a Key and a Value")
        pairs.append((key, value))
    return await _set_tags(request, validated(pairs), 200)


async def delete_object_tagging(request: web.Request) -> web.Response:
    return await _set_tags(request, (), 204)
