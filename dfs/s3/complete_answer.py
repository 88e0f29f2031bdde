"""How a CompleteMultipartUpload is answered: in time, kept alive, or after another
Complete of the same upload.

- **Kept alive.** Assembling an object takes time growing with it (``dfs.api.multipart``:
  its parts re-chunked around their edges, or read back whole). As S3 does, an answer not
  ready within ``KEEPALIVE`` seconds starts (200) and whitespace is sent every
  ``KEEPALIVE`` seconds until the result, or an ``<Error>`` document, ends the body
  (botocore reads an error in a 200 answer of this call as the error, and retries the
  retryable ones). The work runs in a task held in ``_RUNNING``, so a Complete whose client
  went away still finishes, as on S3.
- **After another.** botocore sends a Complete again when it lost the first one's answer (a
  connection cut by a proxy, a read timeout). The first may still be assembling: the upload
  is ``completing``, and a second assembly would make a second object. The retry waits,
  polling the metadata store (so it works whichever gateway process holds the first), for
  the upload to end: completed, it is answered as the first was
  (``dfs.s3.multipart_retry``, or ``NoSuchUpload`` for another part list); given back open
  (the first failed), 503 ``ServiceUnavailable``, which botocore retries, and that retry
  completes it; still ``completing`` after ``OTHER_WAIT`` (a gateway that crashed
  mid-assembly leaves it so until abandoned uploads are collected), 503 as well. An upload
  left ``completing`` after its object was linked (the first's last state change failed,
  or its gateway crashed just then) is answered as completed: from ``LINKED_AFTER``
  seconds on, every ``LINKED_EVERY`` seconds, the wait also asks whether the key's current
  version is the object of exactly these parts, made since the upload began. Unlike an assembly, the wait is no work to
  finish: it ends with its request, whose client may have gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from aiohttp import hdrs, web

from dfs.api.multipart import Multipart
from dfs.errors import DfsError, UploadNotFound
from dfs.meta.multipart import UPLOAD_COMPLETING, UPLOAD_OPEN, MultipartUpload
from dfs.s3 import multipart_retry
from dfs.s3.errors import S3Error, error_response, from_dfs
from dfs.s3.multipart_xml import Asked

log = logging.getLogger("dfs.s3.multipart")

KEEPALIVE = 5.0
"""Seconds before a Complete's answer starts, then between its spaces."""
OTHER_WAIT = 900.0
"""How long a Complete waits for another Complete of its upload to end."""
OTHER_POLL = 0.25
"""Seconds between its looks at the upload's state meanwhile."""
LINKED_AFTER = 30.0
LINKED_EVERY = 5.0
"""When (seconds into the wait) and how often it also looks for the object already linked."""
_RUNNING: set[asyncio.Task[web.Response]] = set()
"""Completes in progress: held here so that one whose client went away still finishes (as
on S3) and is not garbage-collected half-way."""


async def answer(
    request: web.Request, work: Coroutine[Any, Any, web.Response], *, finish: bool = True
) -> web.StreamResponse:
    """``work``'s answer when it is done within ``KEEPALIVE``; otherwise kept alive.
    ``finish``: ``work`` runs to its end even if the request ends first (an assembly);
    otherwise it is cancelled with the request (a wait)."""
    task = asyncio.create_task(work)
    if finish:
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)
    else:
        task.add_done_callback(_retrieved)
    try:
        done, _ = await asyncio.wait({task}, timeout=KEEPALIVE)
        if done:
            return task.result()
        return await kept_alive(request, task)
    finally:
        if not finish:
            task.cancel()


def _retrieved(task: asyncio.Task[web.Response]) -> None:
    """A wait's error read, so that one nobody awaits (its client gone) is not logged as
    lost: it is only this request's answer."""
    if not task.cancelled():
        task.exception()


async def kept_alive(request: web.Request, task: asyncio.Task[web.Response]) -> web.StreamResponse:
    """The answer of a Complete not done within ``KEEPALIVE`` seconds: 200 sent at once,
    whitespace until the result. Its headers are gone by then, so it has no
    ``x-amz-version-id`` (ListObjectVersions or a HEAD tells the version)."""
    resp = web.StreamResponse(status=200, headers={hdrs.CONTENT_TYPE: "application/xml"})
    await resp.prepare(request)
    await resp.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    while True:
        done, _ = await asyncio.wait({task}, timeout=KEEPALIVE)
        if done:
            break
        await resp.write(b" ")
    try:
        text = task.result().text or ""
    except S3Error as err:
        text = error_response(err, request.path).text or ""
    except DfsError as exc:
        text = error_response(from_dfs(exc), request.path).text or ""
    except Exception:  # the status is sent: the error can only be told in the body
        log.exception("complete of %s failed", request.path)
        text = error_response(from_dfs(DfsError("internal")), request.path).text or ""
    body = text.split("\n", 1)[1] if text.startswith("<?xml") else text
    await resp.write(body.encode())
    await resp.write_eof()
    return resp


async def upload_state(mp: Multipart, upload_id: str) -> str:
    """The upload's state as the metadata store has it now; "" once it is gone (finished
    and forgotten)."""
    try:
        return (await mp.store.get_multipart_upload(upload_id)).state
    except UploadNotFound:
        return ""


async def after_another(
    request: web.Request,
    mp: Multipart,
    u: MultipartUpload,
    asked: Sequence[Asked],
) -> web.Response:
    """The answer of a Complete of ``u`` once the other Complete under way has ended (see
    the module's docstring)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    looked = started + LINKED_AFTER - LINKED_EVERY  # when it last looked for the object
    while True:
        state = await upload_state(mp, u.upload_id)
        if state == UPLOAD_OPEN:
            raise S3Error(
                "ServiceUnavailable", 503, "another Complete of this upload failed: send again"
            )
        now = loop.time()
        ended = state != UPLOAD_COMPLETING  # done: linked, or aborted
        if ended or now - looked >= LINKED_EVERY:
            looked = now
            # still completing: only a version this upload made (not an earlier object of
            # the same bytes) tells that its link is done
            after = None if ended else u.created_at
            again = await multipart_retry.completed_before(request, u.bucket, u.key, asked, after)
            if again is not None:
                return again
            if ended:
                raise UploadNotFound(f"no multipart upload {u.upload_id} of {u.bucket}/{u.key}")
        if now - started >= OTHER_WAIT:
            raise S3Error(
                "ServiceUnavailable", 503, "another Complete of this upload is still running"
            )
        await asyncio.sleep(OTHER_POLL)
