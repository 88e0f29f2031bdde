"""A CompleteMultipartUpload sent again after one that succeeded: S3 answers it 200.

A client whose Complete succeeded but whose answer was lost (a connection cut, a timeout:
botocore retries such a request) sends the same Complete again. The upload is gone by then
(``Multipart.finish`` forgot it), and a gateway that answered ``NoSuchUpload`` failed an
upload whose object is stored. S3 answers the retry as the first, and so does this: when the
key's current version, readable by the caller, is a multipart object whose ETag is the MD5
of exactly the asked parts' MD5s (``multipart_etag``), it is the one that Complete made (or
one of the very same bytes), and its result is answered again. Anything else stays
``NoSuchUpload``: an aborted upload, a key overwritten since, a different part list.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from dfs.api.multipart import multipart_etag
from dfs.errors import DfsError
from dfs.s3 import object_reads, object_writes
from dfs.s3.context import NAMESPACE, owner_ok, principal, xml, xml_response
from dfs.s3.errors import S3Error
from dfs.s3.multipart_xml import Asked


async def completed_before(
    request: web.Request,
    bucket: str,
    key: str,
    asked: Sequence[Asked],
    made_after: float | None = None,
) -> web.Response | None:
    """The answer of the Complete of ``asked`` that made the key's current version, or None
    if that version is not one (or the caller may not read it, or, with ``made_after``, it
    was made before that time: an earlier object of the same bytes)."""
    try:
        etag = multipart_etag([a.etag for a in asked])
    except ValueError:  # an ETag that is not hex: no part of ours, no object of them
        return None
    ns = request.app[NAMESPACE]
    try:
        b, v = await object_reads.readable(
            ns, principal(request), bucket, key, None, owner_ok(request, bucket)
        )
    except (S3Error, DfsError):
        return None
    if v.is_delete_marker or v.etag != etag:
        return None
    if made_after is not None and v.created_at < made_after:
        return None
    location = f"{request.scheme}://{request.host}/{bucket}/{key}"
    body = xml("Location", location) + xml("Bucket", bucket) + xml("Key", key)
    resp = xml_response("CompleteMultipartUploadResult", body + xml("ETag", f'"{etag}"'))
    resp.headers.update(object_writes.version_header(b, v))
    return resp
