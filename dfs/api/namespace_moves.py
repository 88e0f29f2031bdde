"""Copies and moves of keys and whole prefixes as metadata, for ``dfs.api.namespace_service``
(``Namespace`` takes them from ``NamespaceMoves``): no chunk is read or written, a new
version links the source version's file (manifests are content-addressed).

A copy is built from a source version it read (its metadata, stored checksums, ETag);
the store copies the version it finds at the write. Where the two could differ, the write
of an unversioned (or suspended) source since the read: it rewrites the version ``null``
in place with other bytes. So every copy names the file it read (``expect_file``) and the
store refuses one that finds another (``SourceChanged``); the source is then read again
and the copy built again from it (``COPY_ATTEMPTS`` reads in all, then 503 Unavailable),
so a copy's bytes and fields are always one version's. A caller that checked conditions
of its own on its read (the S3 gateway's ``x-amz-copy-source-if-*``) passes that file and
gets ``SourceChanged`` back, to read and check again itself.

A move deletes its source only while the source is still the version it copied: by
version id, and by the file and write time (``if_written``) for ``null``, which every
write of the key reuses; a write landing during the move stays.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from dfs.api import access
from dfs.api.bodies import Principal
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_records import Resolved
from dfs.errors import InvalidRequest, SourceChanged, Unavailable
from dfs.meta.namespace import (
    ACCESS_PRIVATE,
    BucketRecord,
    NamespaceStore,
    NewObject,
    ObjectVersion,
    PutResult,
)

if TYPE_CHECKING:
    from dfs.api.coordinator import Coordinator

PREFIX_PAGE = 500  # keys per listing page while copying, moving or deleting a prefix
MAX_PREFIX_KEYS = 100_000  # keys one prefix operation may touch
COPY_ATTEMPTS = 4  # reads of a copy's source (each written over since) before 503


class NamespaceMoves:
    """``Namespace``'s copies and moves (see the module docstring)."""

    if TYPE_CHECKING:  # provided by Namespace
        coord: Coordinator

        @property
        def store(self) -> NamespaceStore: ...
        async def bucket(self, name: str) -> BucketRecord: ...
        async def resolve(
            self, who: Principal | None, bucket: str, key: str, version: str | None
        ) -> Resolved: ...

    async def _copy_one(
        self,
        src: ObjectVersion,
        dst_bucket: str,
        dst_key: str,
        fields: ObjectFields,
        owner: str,
        if_absent: bool = False,
        if_match: str | None = None,
        *,
        shared_with: Sequence[str] = (),
    ) -> PutResult:
        """``src`` copied to ``dst_bucket/dst_key`` as metadata; ``owner``: the tenant the
        caller read as the destination bucket's owner (its write access checked against
        it), so the store refuses a bucket made again by another tenant since.
        SourceChanged when the source version links another file than ``src`` by now."""
        dst = NewObject(
            bucket=dst_bucket,
            key=dst_key,
            file_id=src.file_id,
            size=src.size,
            etag=src.etag,
            sha256=src.sha256,
            content_type=fields.content_type or src.content_type,
            user_metadata=src.user_metadata if fields.metadata is None else fields.metadata,
            tags=src.tags if fields.tags is None else fields.tags,
            access=fields.access or ACCESS_PRIVATE,
            shared_with=tuple(shared_with),
            headers=src.headers if fields.headers is None else fields.headers,
            owner=owner,
        )
        return await self.store.copy_object(
            src.bucket,
            src.key,
            src.version_id,
            dst,
            self.coord.clock(),
            if_absent=if_absent,
            if_match=if_match,
            expect_file=src.file_id,
        )

    async def _keys_under(self, bucket: str, prefix: str) -> AsyncIterator[ObjectVersion]:
        token: str | None = None
        seen = 0
        while True:
            page = await self.store.list_objects(
                bucket, prefix=prefix, token=token, limit=PREFIX_PAGE
            )
            for o in page.objects:
                seen += 1
                if seen > MAX_PREFIX_KEYS:
                    raise InvalidRequest(f"more than {MAX_PREFIX_KEYS} keys under {prefix!r}")
                yield o
            token = page.next_token
            if token is None:
                return

    async def copy(
        self,
        who: Principal,
        src: tuple[str, str],
        dst: tuple[str, str],
        *,
        version: str | None = None,
        recursive: bool = False,
        move: bool = False,
        fields: ObjectFields | None = None,
        if_absent: bool = False,
        if_match: str | None = None,
        expect_file: str | None = None,
    ) -> list[ObjectVersion]:
        """Copy (or move) ``src`` to ``dst`` as metadata; with ``recursive`` every key under
        the prefix ``src`` to the same relative key under ``dst``. The new versions; what
        ``fields`` gives replaces the source's (S3's REPLACE directives). ``if_absent`` and
        ``if_match``: the conditions of ``link``, on the target of a single copy.
        ``expect_file``: the file of the source version the caller read (a single copy):
        SourceChanged, nothing written, when the source links another by now; without it
        a source written meanwhile is read again (``COPY_ATTEMPTS``)."""
        src_b = await self.bucket(src[0])
        if recursive:  # one key's read access is ``resolve``'s (an object shared with who)
            access.require_list(who, src_b)
        if move:
            access.require_write(who, src_b)
        dst_b = await self.bucket(dst[0])
        access.require_write(who, dst_b)
        owner = dst_b.tenant  # the store refuses the bucket if another's by the write
        if not recursive:

            async def read() -> ObjectVersion:
                return (await self.resolve(who, src[0], src[1], version)).version

            when = (if_absent, if_match)
            step = partial(
                self._move_one, dst=dst, owner=owner, move=move, fields=fields, when=when
            )
            return [await self._from_source(None, read, step, expect_file)]
        if if_absent or if_match is not None or expect_file is not None:
            raise InvalidRequest("conditions apply to the copy of one key")
        if src[0] == dst[0] and dst[1].startswith(src[1]):
            raise InvalidRequest("cannot copy a prefix into itself")
        done = []
        async for o in self._sources(src, dst):
            target = (dst[0], dst[1] + o.key[len(src[1]) :])
            again = partial(self.store.get_object, o.bucket, o.key, o.version_id)
            step = partial(self._move_one, dst=target, owner=owner, move=move, fields=fields)
            done.append(await self._from_source(o, again, step))
        return done

    async def _from_source(
        self,
        first: ObjectVersion | None,
        read: Callable[[], Awaitable[ObjectVersion]],
        step: Callable[[ObjectVersion], Awaitable[ObjectVersion]],
        expect_file: str | None = None,
    ) -> ObjectVersion:
        """``step`` (a copy or move) of the source version ``first`` (None: ``read``); when
        the store finds the source written since (``SourceChanged``), of the version
        ``read`` again. With ``expect_file`` the caller's read is the one: SourceChanged."""
        o = first
        for _ in range(COPY_ATTEMPTS):
            if o is None:
                o = await read()
            if expect_file is not None and o.file_id != expect_file:
                raise SourceChanged(f"{o.key!r} was written since it was read for the copy")
            try:
                return await step(o)
            except SourceChanged:
                if expect_file is not None:
                    raise
                o = None
        raise Unavailable("the source of the copy kept being written meanwhile; try again")

    async def _sources(
        self, src: tuple[str, str], dst: tuple[str, str]
    ) -> AsyncIterator[ObjectVersion]:
        """The keys a recursive copy of prefix ``src`` to ``dst`` copies, in order. Into a
        parent prefix of the same bucket (``a/b/`` to ``a/``) a target may be a source key:
        all are listed first (so no key the copy writes is listed as a source again), and
        the copy is refused when a key would be written onto a source key not copied yet
        (``a/b/b/x`` onto ``a/b/x``, whose own bytes would be gone before they are copied).
        A target that is a source key copied already is overwritten as any target is."""
        keys = self._keys_under(src[0], src[1])
        if src[0] != dst[0] or not src[1].startswith(dst[1]):
            async for o in keys:
                yield o
            return
        listed = [o async for o in keys]
        order = {o.key: i for i, o in enumerate(listed)}
        for i, o in enumerate(listed):
            target = dst[1] + o.key[len(src[1]) :]
            if order.get(target, -1) > i:
                raise InvalidRequest(
                    f"cannot copy {src[1]!r} to {dst[1]!r}: {o.key!r} would overwrite "
                    f"{target!r} before {target!r} itself is copied"
                )
        for o in listed:
            yield o

    async def _move_one(
        self,
        o: ObjectVersion,
        dst: tuple[str, str],
        owner: str,
        move: bool,
        fields: ObjectFields | None = None,
        when: tuple[bool, str | None] = (False, None),
    ) -> ObjectVersion:
        """``o`` copied (or moved: never onto itself, the source deleted only while ``o`` is
        its latest) to ``dst``; ``when``: ``link``'s conditions on ``dst``."""
        if move and (o.bucket, o.key) == dst:
            raise InvalidRequest(f"cannot move {o.key!r} onto itself")
        made = await self._copy_one(o, dst[0], dst[1], fields or ObjectFields(), owner, *when)
        if move:  # Conflict if written since (``null`` too: its file and time): it stays
            await self.store.delete_object(
                o.bucket,
                o.key,
                None,
                self.coord.clock(),
                if_latest=o.version_id,
                if_written=(o.file_id, o.created_at),
            )
        return made.version
