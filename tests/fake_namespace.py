"""An in-memory NamespaceStore for route tests that must not wait for a backend.

Follows the port's contract where the API depends on it (versioning states, delete
markers, listings with delimiter and tokens, copies, usage); counts usage by scanning and
releases nothing (chunk refcounts are the real backends' business and their contract suite's).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

from aiohttp import web

from dfs.api.context import NAMESPACE
from dfs.errors import BucketExists, BucketNotEmpty, BucketNotFound, Conflict, KeyNotFound
from dfs.meta.namespace import (
    NULL_VERSION,
    VERSIONING_ENABLED,
    VERSIONING_UNVERSIONED,
    BucketRecord,
    NewObject,
    ObjectListing,
    ObjectVersion,
    PutResult,
    SearchQuery,
    Usage,
)


class FakeNamespace:
    def __init__(self) -> None:
        self.buckets: dict[str, BucketRecord] = {}
        self.versions: dict[tuple[str, str], list[ObjectVersion]] = {}  # newest first
        self._seq = itertools.count(1)

    async def create_bucket(self, rec: BucketRecord) -> None:
        if rec.name in self.buckets:
            raise BucketExists(rec.name)
        self.buckets[rec.name] = rec

    async def get_bucket(self, name: str) -> BucketRecord:
        if name not in self.buckets:
            raise BucketNotFound(name)
        return self.buckets[name]

    async def list_buckets(self, tenant: str, *, granted: bool = False) -> list[BucketRecord]:
        return sorted(
            (
                b
                for b in self.buckets.values()
                if b.tenant == tenant or (granted and tenant in dict(b.grants))
            ),
            key=lambda b: b.name,
        )

    async def delete_bucket(self, name: str, tenant: str) -> None:
        b = await self.get_bucket(name)
        if b.tenant != tenant:
            raise BucketNotFound(name)
        if any(k[0] == name and v for k, v in self.versions.items()):
            raise BucketNotEmpty(name)
        del self.buckets[name]

    async def update_bucket(
        self,
        name: str,
        tenant: str,
        *,
        versioning: str | None = None,
        access: str | None = None,
        grants: Sequence[tuple[str, str]] | None = None,
    ) -> BucketRecord:
        b = await self.get_bucket(name)
        if b.tenant != tenant:
            raise BucketNotFound(name)
        if versioning == VERSIONING_UNVERSIONED and b.versioning != VERSIONING_UNVERSIONED:
            raise Conflict("versioning cannot be turned off")
        b = dataclasses.replace(
            b,
            versioning=versioning or b.versioning,
            access=access or b.access,
            grants=b.grants if grants is None else tuple(sorted(grants)),
        )
        self.buckets[name] = b
        return b

    def _add(self, bucket: str, key: str, v: ObjectVersion) -> PutResult:
        chain = self.versions.setdefault((bucket, key), [])
        chain[:] = [dataclasses.replace(o, is_latest=False) for o in chain]
        released = None
        if v.version_id == NULL_VERSION:
            old = [o for o in chain if o.version_id == NULL_VERSION]
            released = old[0].file_id if old and old[0].file_id else None
            chain[:] = [o for o in chain if o.version_id != NULL_VERSION]
        chain.insert(0, v)
        return PutResult(v, released)

    def _vid(self, bucket: str) -> str:
        if self.buckets[bucket].versioning == VERSIONING_ENABLED:
            return f"{10**12 - next(self._seq):012d}"
        return NULL_VERSION

    async def put_object(self, obj: NewObject, now: float) -> PutResult:
        await self.get_bucket(obj.bucket)
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        v = ObjectVersion(version_id=self._vid(obj.bucket), created_at=now, **fields)
        return self._add(obj.bucket, obj.key, v)

    async def get_object(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> ObjectVersion:
        await self.get_bucket(bucket)
        chain = self.versions.get((bucket, key), [])
        for v in chain:
            if version_id is None and v.is_latest and not v.is_delete_marker:
                return v
            if version_id is not None and v.version_id == version_id:
                return v
        raise KeyNotFound(f"{bucket}/{key}")

    async def delete_object(
        self, bucket: str, key: str, version_id: str | None, now: float
    ) -> ObjectVersion | None:
        b = await self.get_bucket(bucket)
        chain = self.versions.get((bucket, key), [])
        if version_id is not None:
            gone = [v for v in chain if v.version_id == version_id]
            chain[:] = [v for v in chain if v.version_id != version_id]
            if chain and gone and gone[0].is_latest:
                chain[0] = dataclasses.replace(chain[0], is_latest=True)
            return gone[0] if gone else None
        if b.versioning == VERSIONING_UNVERSIONED:
            self.versions.pop((bucket, key), None)
            return None
        marker = ObjectVersion(bucket, key, self._vid(bucket), "", 0, now, is_delete_marker=True)
        return self._add(bucket, key, marker).version

    async def restore_version(
        self, bucket: str, key: str, version_id: str, now: float
    ) -> PutResult:
        v = await self.get_object(bucket, key, version_id)
        return await self.copy_object(
            bucket, key, version_id, NewObject(bucket, key, v.file_id, v.size), now
        )

    async def copy_object(
        self, src_bucket: str, src_key: str, src_version: str | None, dst: NewObject, now: float
    ) -> PutResult:
        src = await self.get_object(src_bucket, src_key, src_version)
        same = dataclasses.replace(
            dst, file_id=src.file_id, size=src.size, etag=src.etag, sha256=src.sha256
        )
        if dst.content_type == "application/octet-stream":
            same = dataclasses.replace(same, content_type=src.content_type)
        return await self.put_object(same, now)

    async def update_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        *,
        tags: Sequence[tuple[str, str]] | None = None,
        access: str | None = None,
        shared_with: Sequence[str] | None = None,
    ) -> ObjectVersion:
        v = await self.get_object(bucket, key, version_id)
        new = dataclasses.replace(
            v,
            tags=v.tags if tags is None else tuple(sorted(tags)),
            access=access or v.access,
            shared_with=v.shared_with if shared_with is None else tuple(shared_with),
        )
        chain = self.versions[(bucket, key)]
        chain[chain.index(v)] = new
        return new

    def _page(
        self, entries: list[tuple[str, ObjectVersion | None]], token: str | None, limit: int
    ) -> ObjectListing:
        start = int(token) if token else 0
        page = entries[start : start + limit]
        nxt = str(start + limit) if start + limit < len(entries) else None
        return ObjectListing(
            objects=[o for _, o in page if o is not None],
            common_prefixes=[p for p, o in page if o is None],
            next_token=nxt,
        )

    def _entries(
        self, bucket: str, prefix: str, delimiter: str, versions: bool
    ) -> list[tuple[str, ObjectVersion | None]]:
        out: list[tuple[str, ObjectVersion | None]] = []
        seen: set[str] = set()
        for (b, key), chain in sorted(self.versions.items(), key=lambda kv: kv[0][1].encode()):
            if b != bucket or not key.startswith(prefix) or not chain:
                continue
            if not versions and (chain[0].is_delete_marker or not chain[0].is_latest):
                continue
            rest = key[len(prefix) :]
            if delimiter and delimiter in rest:
                cp = prefix + rest.split(delimiter)[0] + delimiter
                if cp not in seen:
                    seen.add(cp)
                    out.append((cp, None))
                continue
            if versions:
                out.extend((key, v) for v in chain)
            elif chain[0].is_latest and not chain[0].is_delete_marker:
                out.append((key, chain[0]))
        return out

    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        token: str | None = None,
        limit: int = 1000,
    ) -> ObjectListing:
        await self.get_bucket(bucket)
        return self._page(self._entries(bucket, prefix, delimiter, False), token, limit)

    async def list_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        token: str | None = None,
        limit: int = 1000,
    ) -> ObjectListing:
        await self.get_bucket(bucket)
        return self._page(self._entries(bucket, prefix, delimiter, True), token, limit)

    async def search_objects(
        self, bucket: str, query: SearchQuery, *, token: str | None = None, limit: int = 100
    ) -> ObjectListing:
        def match(o: ObjectVersion) -> bool:
            tags = dict(o.tags)
            return (
                o.key.startswith(query.prefix)
                and query.contains in o.key
                and (query.tag is None or tags.get(query.tag[0]) is not None)
                and (query.tag is None or query.tag[1] in (None, tags.get(query.tag[0])))
                and o.content_type.startswith(query.content_type)
                and (query.min_size is None or o.size >= query.min_size)
                and (query.max_size is None or o.size <= query.max_size)
            )

        entries = [e for e in self._entries(bucket, "", "", False) if e[1] and match(e[1])]
        return self._page(entries, token, limit)

    def _all(self, tenant: str, bucket: str | None) -> list[ObjectVersion]:
        return [
            v
            for (b, _), chain in self.versions.items()
            if self.buckets[b].tenant == tenant and bucket in (None, b)
            for v in chain
        ]

    @staticmethod
    def _sum(vs: list[ObjectVersion]) -> Usage:
        stored = [v for v in vs if not v.is_delete_marker]
        return Usage(
            objects=sum(1 for v in stored if v.is_latest),
            versions=len(stored),
            delete_markers=len(vs) - len(stored),
            logical_bytes=sum(v.size for v in stored),
            stored_bytes=sum(v.size for v in stored),
        )

    async def usage(self, tenant: str, bucket: str | None = None) -> Usage:
        return self._sum(self._all(tenant, bucket))

    async def usage_by_prefix(self, tenant: str, bucket: str) -> dict[str, Usage]:
        groups: dict[str, list[ObjectVersion]] = {}
        for v in self._all(tenant, bucket):
            groups.setdefault(v.key.split("/")[0] if "/" in v.key else "", []).append(v)
        return {k: self._sum(vs) for k, vs in groups.items()}

    async def usage_by_type(self, tenant: str, bucket: str | None = None) -> dict[str, Usage]:
        groups: dict[str, list[ObjectVersion]] = {}
        for v in self._all(tenant, bucket):
            name = v.key.rsplit("/", 1)[-1]
            groups.setdefault(name.rsplit(".", 1)[-1].lower() if "." in name else "", []).append(v)
        return {k: self._sum(vs) for k, vs in groups.items()}


def ensure_namespace(app: web.Application) -> None:
    """Give the API app's namespace service a fake store when its backend has none yet."""
    namespace = app[NAMESPACE]
    if namespace._store is None:
        namespace._store = FakeNamespace()
