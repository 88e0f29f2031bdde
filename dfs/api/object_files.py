"""The file an API request made for an object version, linked, and released again when no
version links it: the API-side twin of the S3 gateway's ``dfs.s3.object_writes.link_made``.

``POST /upload?bucket=&key=`` and ``/finalize-upload`` with ``bucket``/``key`` make the
caller's file, committed ``for_object`` (no lookup by content hands it to anyone), then link
it. A read-write grantee's file is cloned into the bucket owner's tenant by the link
(``Namespace.link``): the version links the clone and the grantee's own file would be left
behind, counted in the grantee's usage and listed with its files, though no version needs
it. It is deleted then, and when the link is refused (the bucket gone, the grant revoked),
as a PutObject's is. Only a file the request made is: never one found by content nor one
the caller committed earlier (a retried finalize), which the caller may hold by its id.
"""

from __future__ import annotations

import logging

from dfs.api.bodies import Principal
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_service import Namespace
from dfs.errors import Conflict, DfsError, FileNotFound
from dfs.meta.namespace import PutResult

log = logging.getLogger("dfs.api")


async def link_made(
    ns: Namespace,
    who: Principal,
    target: tuple[str, str],
    file_id: str,
    fields: ObjectFields,
    *,
    made: bool,
) -> PutResult:
    """``Namespace.link`` of ``file_id`` as ``target``'s new version; ``made``: this request
    made and committed the file ``for_object``, so it is released when the version links
    another file (a grantee's clone) or the link is refused. A file committed before (a
    finalize sent again after its answer was lost) is linked ``unless_current``: the first
    finalize's version, if written, is the answer, not a second one."""
    try:
        linked = await ns.link(who, *target, file_id, fields, unless_current=not made)
    except BaseException:  # a refused link, or the request cancelled: no version links it
        if made:
            await release_made(ns, who.tenant, file_id)
        raise
    if made and linked.version.file_id != file_id:
        await release_made(ns, who.tenant, file_id)
    return linked


async def release_made(ns: Namespace, tenant: str, file_id: str) -> None:
    """Delete ``tenant``'s file ``file_id`` (gone already, or linked meanwhile by its id:
    left as it is). A failure to delete is left too (the file then stays the caller's,
    listed and deletable): it must not turn a version already written, or the error that
    refused it, into another answer."""
    if not file_id:
        return  # an empty object links no file
    try:
        await ns.coord.delete_file(file_id, tenant)
    except (FileNotFound, Conflict):
        pass
    except DfsError as exc:
        log.warning("file %s made for an object not released: %s", file_id, exc)
