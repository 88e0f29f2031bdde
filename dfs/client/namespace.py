"""The namespace half of the Python API: buckets, objects by key, versions, access, usage.

``NamespaceMethods`` is a base of ``dfs.client.Client``: every method is one API call (or a
few: pages of a listing), in the shapes of docs/WIRE.md ("Namespace"). Moving bytes is not
done here: ``dfs.client.namespace_sync`` uploads and downloads files and trees through the
existing pipelines and links them as objects. A remote path is ``bucket/key`` (``parse_remote``,
from dfs.client.remote_names).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from itertools import pairwise
from typing import Any
from urllib.parse import quote

import aiohttp

from dfs import protocol
from dfs.client.remote_names import is_file_id as is_file_id
from dfs.client.remote_names import is_remote as is_remote
from dfs.client.remote_names import parse_remote as parse_remote
from dfs.transport.api_client import ApiClient

_DOTS = frozenset({".", ".."})


def key_path(key: str) -> str:
    """``key`` for a URL path: percent-encoded, its slashes kept except beside a ``.`` or
    ``..`` segment, sent as ``%2F`` (the API decodes it back). A URL library drops dot
    segments from a path (yarl does on parsing), so ``x/../keep.txt`` would name
    ``keep.txt``: ``rm`` would delete another object. A key that is only ``.`` or ``..``
    cannot be named in a path at all; its request reaches no object route and fails."""
    parts = [quote(p, safe="") for p in key.split("/")]
    out = parts[0]
    for before, part in pairwise(parts):
        out += ("%2F" if part in _DOTS or before in _DOTS else "/") + part
    return out


_q = key_path


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class NamespaceMethods:
    """Namespace calls of ``Client`` (which supplies the session, URL and token)."""

    api_url: str
    token: str | None

    def _require_session(self) -> aiohttp.ClientSession:
        raise NotImplementedError

    def _auth(self) -> dict[str, str]:
        return {protocol.AUTHORIZATION: f"Bearer {self.token}"} if self.token else {}

    @property
    def api(self) -> ApiClient:
        raise NotImplementedError

    async def _call(
        self, method: str, path: str, *, retry: bool | None = None, **kwargs: Any
    ) -> Any:
        """One namespace call. What may be repeated is sent again while the API gives no
        answer, as the transfers' calls are (``dfs.transport.api_client``): reads, and the
        PATCHes, which set fields to values given (but see ``update_object``). Other
        changes are not, unless the call says so (``retry``): a second delete would make
        a second delete marker."""
        if retry is None:
            retry = method in ("GET", "PATCH")
        return await self.api.call(method, path, retry=retry, **kwargs)

    # --- buckets ----------------------------------------------------------------------------

    async def make_bucket(
        self, name: str, *, versioning: str | None = None, access: str | None = None
    ) -> dict[str, Any]:
        body = _drop_none({"name": name, "versioning": versioning, "access": access})
        result: dict[str, Any] = await self._call("POST", protocol.BUCKETS, json=body)
        return result

    async def remove_bucket(self, name: str) -> None:
        await self._call("DELETE", f"{protocol.BUCKETS}/{name}")

    async def list_buckets(self) -> list[dict[str, Any]]:
        answer = await self._call("GET", protocol.BUCKETS)
        return list(answer["buckets"])

    async def bucket_info(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"{protocol.BUCKETS}/{name}")
        return result

    async def set_bucket(
        self,
        name: str,
        *,
        versioning: str | None = None,
        access: str | None = None,
        grants: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Change a bucket (owner): versioning, access (private/public-read), grants
        (tenant -> read/read-write; the whole set)."""
        body = _drop_none({"versioning": versioning, "access": access, "grants": grants})
        result: dict[str, Any] = await self._call("PATCH", f"{protocol.BUCKETS}/{name}", json=body)
        return result

    # --- listing ----------------------------------------------------------------------------

    async def list_page(
        self,
        bucket: str,
        prefix: str = "",
        *,
        delimiter: str = "/",
        token: str | None = None,
        limit: int = 1000,
        versions: bool = False,
    ) -> dict[str, Any]:
        """One page: ``{"objects", "common_prefixes", "next_token"}``."""
        params = _drop_none(
            {
                "prefix": prefix or None,
                "delimiter": delimiter or None,
                "token": token,
                "limit": str(limit),
                "versions": "true" if versions else None,
            }
        )
        result: dict[str, Any] = await self._call(
            "GET", f"{protocol.BUCKETS}/{bucket}/objects", params=params
        )
        return result

    async def list_pages(
        self, bucket: str, prefix: str = "", *, delimiter: str = "/", versions: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Every page of a listing (``list_page``'s), in order."""
        token: str | None = None
        while True:  # ends: each page's token is past the last
            page = await self.list_page(
                bucket, prefix, delimiter=delimiter, token=token, versions=versions
            )
            yield page
            token = page["next_token"]
            if not token:
                return

    async def list_all(
        self, bucket: str, prefix: str = "", *, delimiter: str = "/", versions: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Every entry of a listing, page after page: objects (dicts of docs/WIRE.md) and,
        with a delimiter, folders as ``{"prefix": ...}``."""
        async for page in self.list_pages(bucket, prefix, delimiter=delimiter, versions=versions):
            for p in page["common_prefixes"]:
                yield {"prefix": p}
            for o in page["objects"]:
                yield o

    async def key_versions(self, bucket: str, key: str) -> list[dict[str, Any]]:
        """Every version and delete marker of ``key`` itself, newest written first (not the
        longer keys it is a prefix of, which the listing gives after it)."""
        out: list[dict[str, Any]] = []
        async for o in self.list_all(bucket, key, delimiter="", versions=True):
            if o["key"] != key:
                break
            out.append(o)
        return out

    # --- objects ----------------------------------------------------------------------------

    async def link(
        self,
        bucket: str,
        key: str,
        file_id: str = "",
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        access: str | None = None,
        unless_current: bool = True,
    ) -> dict[str, Any]:
        """Make a complete file of this tenant (or nothing: an empty object or folder) the
        new current version of ``bucket/key``: ``{"object", "released_file_id"}``.
        ``unless_current`` (the default): not again when the key's current object links
        the file already, so the link is sent again when the API gave no answer (an answer
        lost in an API restart makes no second version); False: a version every time."""
        body = _drop_none(
            {
                "file_id": file_id or None,
                "content_type": content_type,
                "metadata": metadata,
                "tags": tags,
                "access": access,
                "unless_current": unless_current or None,
            }
        )
        path = f"/objects/{bucket}/{_q(key)}"
        result: dict[str, Any] = await self._call("PUT", path, json=body, retry=unless_current)
        return result

    async def link_many(
        self, bucket: str, entries: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """``link`` of many keys of ``bucket`` (each entry ``{"key", "file_id"?,
        "content_type"?, "metadata"?, "tags"?, "access"?}``, keys distinct), in requests
        of up to ``protocol.MAX_BATCH_FILES``: one answer per entry, in order,
        ``{"object", "released_file_id"}`` or ``{"key", "error"}``. Always
        ``unless_current``, so a request whose answer was lost is sent again."""
        out: list[dict[str, Any]] = []
        step = protocol.MAX_BATCH_FILES
        for start in range(0, len(entries), step):
            body = {
                "bucket": bucket,
                "unless_current": True,
                "objects": [_drop_none(e) for e in entries[start : start + step]],
            }
            answer = await self._call("POST", protocol.OBJECTS_LINK, json=body, retry=True)
            out += answer["objects"]
        return out

    async def object_info(
        self, bucket: str, key: str, *, version: str | None = None
    ) -> dict[str, Any]:
        params = _drop_none({"version": version})
        result: dict[str, Any] = await self._call(
            "GET", f"/object-info/{bucket}/{_q(key)}", params=params
        )
        return result

    async def remove(
        self,
        bucket: str,
        key: str,
        *,
        version: str | None = None,
        unless_deleted: bool = True,
        if_latest: str | None = None,
    ) -> dict[str, Any]:
        """Delete a key (a delete marker where versioning is on) or one version of it.
        ``unless_deleted`` (the default): a key with no current object gets no marker, so
        the delete is sent again when the API gave no answer (removing one version is
        always safe to repeat); False: a marker every time, as S3 adds one. ``if_latest``
        (with ``version``): Conflict unless the key's latest entry is that version id."""
        params = _drop_none(
            {
                "version": version,
                "unless_deleted": "true" if unless_deleted else None,
                "if_latest": if_latest,
            }
        )
        result: dict[str, Any] = await self._call(
            "DELETE",
            f"/objects/{bucket}/{_q(key)}",
            params=params,
            retry=unless_deleted or version is not None,
        )
        return result

    async def remove_versions(
        self, bucket: str, entries: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Remove many versions of ``bucket`` for good (each entry ``{"key", "version",
        "if_latest"?}``), in requests of up to ``protocol.MAX_BATCH_FILES``: one answer per
        entry, in order, ``{"deleted", "version"}`` (``version`` null: it was not there) or
        ``{"key", "error"}``. Safe to send again, as removing one version is."""
        out: list[dict[str, Any]] = []
        step = protocol.MAX_BATCH_FILES
        for start in range(0, len(entries), step):
            body = {"bucket": bucket, "versions": list(entries[start : start + step])}
            answer = await self._call("POST", protocol.OBJECTS_REMOVE, json=body, retry=True)
            out += answer["versions"]
        return out

    async def remove_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every current key under ``prefix``; safe to repeat (the API marks only
        keys that have a current object), so sent again when the API gave no answer."""
        answer = await self._call(
            "DELETE", f"{protocol.BUCKETS}/{bucket}/objects", params={"prefix": prefix}, retry=True
        )
        return int(answer["deleted"])

    async def copy(
        self,
        src: str,
        dst: str,
        *,
        version: str | None = None,
        recursive: bool = False,
        move: bool = False,
    ) -> list[dict[str, Any]]:
        """Copy (``move``: move) ``bucket/key`` to ``bucket/key`` (into ``bucket/folder/``
        under its own name) or, ``recursive``, every key under the prefix
        ``bucket/prefix/`` to ``bucket/prefix/``: metadata only."""
        (sb, sk), (db, dk) = parse_remote(src), parse_remote(dst)
        if not recursive and (not dk or dk.endswith("/")):  # into a folder: keep the name
            dk += sk.rsplit("/", 1)[-1]
        body = _drop_none(
            {
                "src_bucket": sb,
                "src_key": sk,
                "dst_bucket": db,
                "dst_key": dk,
                "version": version,
                "recursive": recursive,
                "move": move,
            }
        )
        answer = await self._call("POST", protocol.OBJECTS_COPY, json=body)
        return list(answer["objects"])

    async def restore(self, bucket: str, key: str, version: str) -> dict[str, Any]:
        body = {"bucket": bucket, "key": key, "version": version}
        answer = await self._call("POST", protocol.OBJECTS_RESTORE, json=body)
        return dict(answer["object"])

    async def update_object(
        self,
        bucket: str,
        key: str,
        *,
        version: str | None = None,
        tags: Mapping[str, str] | None = None,
        access: str | None = None,
        shared_with: Sequence[str] | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Replace tags, access (private/public-read/shared), the tenants it is shared
        with, content type or user metadata of a version (default the current one)."""
        body = _drop_none(
            {
                "version": version,
                "tags": tags,
                "access": access,
                "shared_with": None if shared_with is None else list(shared_with),
                "content_type": content_type,
                "metadata": metadata,
            }
        )
        # a new content type or metadata copies the version over itself (a new version
        # where versioning is on): sent once; tags, access and sharing change in place
        in_place = content_type is None and metadata is None
        result: dict[str, Any] = await self._call(
            "PATCH", f"/object-info/{bucket}/{_q(key)}", json=body, retry=in_place
        )
        return result

    async def object_url(
        self, bucket: str, key: str, *, version: str | None = None, ttl: int | None = None
    ) -> dict[str, Any]:
        """A signed URL that fetches the version without a token until it expires (``ttl``
        seconds, default 15 minutes or the cluster's limit)."""
        params = _drop_none({"version": version, "ttl": None if ttl is None else str(ttl)})
        result: dict[str, Any] = await self._call(
            "GET", f"/object-url/{bucket}/{_q(key)}", params=params
        )
        return result

    async def find(
        self, bucket: str, *, token: str | None = None, limit: int = 100, **query: Any
    ) -> dict[str, Any]:
        """Search a bucket: ``prefix``, ``contains``, ``tag`` ("k" or "k=v"),
        ``content_type``, ``min_size``, ``max_size``, ``after``, ``before``."""
        params = {k: str(v) for k, v in query.items() if v is not None and v != ""}
        params["limit"] = str(limit)
        if token:
            params["token"] = token
        result: dict[str, Any] = await self._call(
            "GET", f"{protocol.BUCKETS}/{bucket}/search", params=params
        )
        return result

    async def usage(self, bucket: str | None = None, *, by: str = "") -> dict[str, Any]:
        """Counters of the tenant or one bucket; ``by`` "prefix" (a du) or "type"."""
        path = protocol.USAGE if bucket is None else f"{protocol.BUCKETS}/{bucket}/usage"
        result: dict[str, Any] = await self._call(
            "GET", path, params=_drop_none({"by": by or None})
        )
        return result
