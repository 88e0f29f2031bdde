"""A copy is one source version's bytes and fields, and a move deletes only what it copied,
when the source (an unversioned or suspended key: its version is ``null`` whatever is
written) is written between the read a copy is built from and the copy itself. The
interleaving is forced: the store's ``copy_object`` (or the move's copy) writes the
source first, once, as a racing client would. In process; S3 through the gateway
(``tests.integration.test_s3_tenancy``), boto3 in threads.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dfs.api.namespace_records import namespace_store
from dfs.api.namespace_service import Namespace
from dfs.client import Client
from dfs.errors import Conflict
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens
from tests.integration.test_s3_tenancy import gateway, run, s3_client

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

A, B = b"A" * 100, b"B" * 300


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def write_first(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch, write: Callable[[], Awaitable[Any]]
) -> list[int]:
    """The store's ``copy_object`` runs ``write`` (once) before copying: the source is
    written after the copy's caller read it. The calls made, counted (not those of
    ``write`` itself: a new content type or metadata is a copy too)."""
    store = namespace_store(inproc.api.coordinator.meta)
    assert store is not None
    copy = store.copy_object
    calls: list[int] = []
    writing: list[int] = []

    async def written_first(*args: Any, **kwargs: Any) -> Any:
        if not writing:
            calls.append(1)
        if len(calls) == 1 and not writing:
            writing.append(1)
            await write()
            writing.clear()
        return await copy(*args, **kwargs)

    monkeypatch.setattr(store, "copy_object", written_first)
    return calls


@pytest.mark.parametrize("directive", ["COPY", "REPLACE"])
async def test_an_s3_copy_of_a_source_written_meanwhile_is_one_versions_bytes_and_fields(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch, directive: str
) -> None:
    """COPY: the fields are the source version's; REPLACE: the request's, with the stored
    checksums of the bytes copied (kept from the source version, never another's)."""
    api = inproc.api.url
    (alice_t,) = await tokens(api, "alice")
    async with gateway(inproc) as url:
        s3 = await s3_client(api, alice_t, url)
        await run(s3.create_bucket, Bucket="cpy")
        put = {"Bucket": "cpy", "Key": "src", "ChecksumAlgorithm": "CRC32"}
        await run(s3.put_object, **put, Body=A, Metadata={"which": "A"}, ContentType="text/a")

        async def put_b() -> None:
            await run(s3.put_object, **put, Body=B, Metadata={"which": "B"}, ContentType="text/b")

        calls = write_first(inproc, monkeypatch, put_b)
        replace = {"Metadata": {"which": "R"}, "ContentType": "text/r"}
        made = await run(
            s3.copy_object,
            Bucket="cpy",
            Key="dst",
            CopySource="cpy/src",
            MetadataDirective=directive,
            **(replace if directive == "REPLACE" else {}),
        )
        monkeypatch.undo()
        assert made["CopyObjectResult"]["ETag"] == etag(B)
        head = await run(s3.head_object, Bucket="cpy", Key="dst", ChecksumMode="ENABLED")
        assert (head["ETag"], head["ContentLength"]) == (etag(B), len(B))
        fields = (head["Metadata"], head["ContentType"])
        assert fields == (
            ({"which": "R"}, "text/r") if directive == "REPLACE" else ({"which": "B"}, "text/b")
        )
        assert head["ChecksumCRC32"] == crc32(B)  # the stored checksum is of these bytes
        got = await run(s3.get_object, Bucket="cpy", Key="dst", ChecksumMode="ENABLED")
        # read in a thread, as every boto3 call here: the gateway answers on this loop
        assert await run(got["Body"].read) == B  # boto3 checks the CRC32 it is answered
        assert len(calls) == 2  # the first copy was refused, the source read again


async def test_an_s3_copy_conditioned_on_the_etag_it_read_copies_no_other_bytes(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = inproc.api.url
    (alice_t,) = await tokens(api, "alice")
    async with gateway(inproc) as url:
        s3 = await s3_client(api, alice_t, url)
        await run(s3.create_bucket, Bucket="cpif")
        await run(s3.put_object, Bucket="cpif", Key="src", Body=A)

        async def put_b() -> None:
            await run(s3.put_object, Bucket="cpif", Key="src", Body=B)

        write_first(inproc, monkeypatch, put_b)
        with pytest.raises(ClientError) as info:
            await run(
                s3.copy_object,
                Bucket="cpif",
                Key="dst",
                CopySource="cpif/src",
                CopySourceIfMatch=etag(A),
            )
        monkeypatch.undo()
        assert info.value.response["Error"]["Code"] == "PreconditionFailed"
        listed = await run(s3.list_objects_v2, Bucket="cpif")
        assert [o["Key"] for o in listed["Contents"]] == ["src"]


async def test_a_native_copy_of_a_source_written_meanwhile_copies_the_new_version_whole(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(A)
    b.write_bytes(B)
    async with Client(inproc.api.url, token=alice) as c:
        await c.make_bucket("ncp")
        await c.upload_to([a], "ncp", "src")
        await c.update_object("ncp", "src", metadata={"which": "A"})

        async def write_b() -> None:
            async with Client(inproc.api.url, token=alice) as writer:
                await writer.upload_to([b], "ncp", "src")
                await writer.update_object("ncp", "src", metadata={"which": "B"})

        calls = write_first(inproc, monkeypatch, write_b)
        (made,) = await c.copy("ncp/src", "ncp/dst")
        monkeypatch.undo()
        src = await c.object_info("ncp", "src")
        assert made["metadata"] == {"which": "B"}
        assert (made["etag"], made["size"]) == (src["etag"], len(B))
        out = tmp_path / "out"
        await c.download_from("ncp", "dst", out)
        assert out.read_bytes() == B
        assert len(calls) == 2


@pytest.mark.parametrize("versioning", ["", "suspended"])
async def test_a_write_landing_during_a_move_of_a_null_version_stays(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, versioning: str
) -> None:
    """The move copied the version it read; the write after that copy is the key's
    current object and is not deleted (Conflict: the move copied an older one)."""
    (alice,) = await tokens(inproc.api.url, "alice")
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_bytes(b"old")
    new.write_bytes(b"written meanwhile")
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("mvb")
        if versioning:
            await a.set_bucket("mvb", versioning="enabled")
            await a.set_bucket("mvb", versioning=versioning)
        await a.upload_to([old], "mvb", "k.txt")
        copy_one = Namespace._copy_one

        async def copy_then_a_write(self: Namespace, *args: Any, **kwargs: Any) -> Any:
            made = await copy_one(self, *args, **kwargs)
            async with Client(inproc.api.url, token=alice) as writer:
                await writer.upload_to([new], "mvb", "k.txt")
            return made

        monkeypatch.setattr(Namespace, "_copy_one", copy_then_a_write)
        with pytest.raises(Conflict):
            await a.copy("mvb/k.txt", "mvb/moved.txt", move=True)
        monkeypatch.undo()
        got = tmp_path / "got"
        await a.download_from("mvb", "k.txt", got)
        assert got.read_bytes() == b"written meanwhile"
        await a.download_from("mvb", "moved.txt", got)
        assert got.read_bytes() == b"old"
