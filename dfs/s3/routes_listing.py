"""ListObjects, version 1 (``GET /{bucket}`` without ``list-type=2``): ``prefix``,
``delimiter``, ``marker`` (list keys after it), ``max-keys`` (at most 1000),
``encoding-type=url``. ``NextMarker`` is sent when a delimiter was given, as S3 does (the
last key or common prefix of the page); without one, clients go on from the last key.
"""

from __future__ import annotations

from aiohttp import web

from dfs.meta.namespace import ObjectListing
from dfs.s3 import anonymous
from dfs.s3.context import NAMESPACE, iso_time, params, xml, xml_response
from dfs.s3.errors import not_implemented
from dfs.s3.listing import encoder, max_keys, page_after
from dfs.s3.names import bucket_name

PARAMS = frozenset({"prefix", "delimiter", "marker", "max-keys", "encoding-type"})


async def list_objects_v1(request: web.Request) -> web.Response:
    q = params(request)
    unsupported = sorted(set(q) - PARAMS)
    if unsupported:
        raise not_implemented(f"ListObjects with {', '.join(unsupported)}")
    enc = encoder(q.get("encoding-type"))
    name, limit = bucket_name(request), max_keys(q.get("max-keys"))
    prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
    ns, who = request.app[NAMESPACE], anonymous.who(request)

    async def lister(after: str, n: int) -> ObjectListing:
        return await ns.listing(
            who,
            name,
            prefix=prefix,
            delimiter=delimiter,
            token=None,
            limit=n,
            versions=False,
            start_after=after,
        )

    b = await ns.visible_bucket(who, name)
    page = await page_after(lister, marker, prefix, delimiter, limit) if limit else None
    parts = [xml("Name", name), xml("Prefix", enc(prefix)), xml("Marker", enc(marker))]
    if page is not None and page.truncated and delimiter:
        parts.append(xml("NextMarker", enc(page.next_marker)))
    parts.append(xml("MaxKeys", limit))
    if delimiter:
        parts.append(xml("Delimiter", enc(delimiter)))
    if q.get("encoding-type"):
        parts.append(xml("EncodingType", "url"))
    parts.append(xml("IsTruncated", "true" if page is not None and page.truncated else "false"))
    owner = f"<Owner>{xml('ID', b.tenant)}{xml('DisplayName', b.tenant)}</Owner>"
    for e in page.entries if page is not None else []:
        if isinstance(e, str):
            parts.append(f"<CommonPrefixes>{xml('Prefix', enc(e))}</CommonPrefixes>")
        else:
            parts.append(
                f"<Contents>{xml('Key', enc(e.key))}{xml('LastModified', iso_time(e.created_at))}"
                f"{xml('ETag', chr(34) + e.etag + chr(34))}{xml('Size', e.size)}{owner}"
                f"{xml('StorageClass', 'STANDARD')}</Contents>"
            )
    return xml_response("ListBucketResult", "".join(parts))
