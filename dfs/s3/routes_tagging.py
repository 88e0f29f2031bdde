"""Tagging through S3: Get/Put/DeleteObjectTagging (``?tagging`` on an object, with an
optional ``versionId``) and the ``x-amz-tagging`` header of PutObject, mapped onto the
namespace's tags (changed in place on one version: tags are not versioned in S3); and
Get/Put/DeleteBucketTagging (``?tagging`` on a bucket, the bucket owner's), kept as a JSON
document of pairs in the bucket-configuration store (``dfs.meta.bucket_config``, kind
``tagging``, tied to the bucket's generation so a bucket created again starts untagged).

S3's limits (``dfs.namespace_rules.validate_tags``): at most 10 tags on an object and 50 on a
bucket, keys of 1-128 and values of 0-256 characters, distinct keys; a breach answers 400
``InvalidTag``. Reading an object's tags needs read access, writing them write access
(``dfs.api.access``). A bucket without tags answers 404 ``NoSuchTagSet``.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from aiohttp import web

from dfs import namespace_rules
from dfs.api.namespace_bodies import ObjectFields
from dfs.errors import InvalidRequest
from dfs.meta.bucket_config import KIND_TAGGING
from dfs.meta.bucket_config import generation_of as generation
from dfs.s3 import xmlbody
from dfs.s3.context import (
    NAMESPACE,
    bucket_configs,
    owned_bucket,
    principal,
    xml,
    xml_response,
)
from dfs.s3.errors import S3Error
from dfs.s3.names import target
from dfs.s3.object_reads import resolve, version_headers, version_param


def invalid_tag(message: str) -> S3Error:
    return S3Error("InvalidTag", 400, message)


def validated(
    pairs: list[tuple[str, str]], limit: int = namespace_rules.MAX_TAGS
) -> tuple[tuple[str, str], ...]:
    try:
        return namespace_rules.validate_tags(pairs, limit)
    except InvalidRequest as exc:
        raise invalid_tag(exc.message) from None


def _tag_set_xml(tags: tuple[tuple[str, str], ...]) -> str:
    items = "".join(f"<Tag>{xml('Key', k)}{xml('Value', v)}</Tag>" for k, v in tags)
    return f"<TagSet>{items}</TagSet>"


def _parse_tagging(raw: bytes) -> list[tuple[str, str]]:
    """The (key, value) pairs of a ``Tagging`` document (one ``TagSet``)."""
    sets = xmlbody.children(xmlbody.parse(raw, "Tagging"), "TagSet")
    if len(sets) != 1:
        raise xmlbody.malformed("Tagging needs one TagSet")
    pairs = []
    for tag in xmlbody.children(sets[0], "Tag"):
        key, value = xmlbody.text(tag, "Key"), xmlbody.text(tag, "Value")
        if key is None or value is None:
            raise xmlbody.malformed("each Tag needs a Key and a Value")
        pairs.append((key, value))
    return pairs


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
    resp = xml_response("Tagging", _tag_set_xml(r.version.tags))
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
    pairs = _parse_tagging(await xmlbody.read_body(request))
    return await _set_tags(request, validated(pairs), 200)


async def delete_object_tagging(request: web.Request) -> web.Response:
    return await _set_tags(request, (), 204)


# --- bucket tagging -------------------------------------------------------------------------


async def get_bucket_tagging(request: web.Request) -> web.Response:
    b = await owned_bucket(request)
    doc = await bucket_configs(request, "tags").get_bucket_config(
        b.name, generation(b.created_at), KIND_TAGGING
    )
    if doc is None:
        raise S3Error("NoSuchTagSet", 404, "The TagSet does not exist")
    tags = tuple((str(k), str(v)) for k, v in json.loads(doc))
    return xml_response("Tagging", _tag_set_xml(tags))


async def put_bucket_tagging(request: web.Request) -> web.Response:
    b = await owned_bucket(request)
    pairs = _parse_tagging(await xmlbody.read_body(request))
    tags = validated(pairs, namespace_rules.MAX_BUCKET_TAGS)
    doc = json.dumps([list(t) for t in tags])
    await bucket_configs(request, "tags").put_bucket_config(
        b.name, generation(b.created_at), KIND_TAGGING, doc
    )
    return web.Response(status=204)


async def delete_bucket_tagging(request: web.Request) -> web.Response:
    b = await owned_bucket(request)
    await bucket_configs(request, "tags").delete_bucket_config(b.name, KIND_TAGGING)
    return web.Response(status=204)
