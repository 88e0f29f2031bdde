"""ListObjectVersions resumed after a version removed since the last page: the key's
older versions still follow (``version-id-marker`` is found by its place among the key's
versions, not by its id). boto3's ``bucket.object_versions.delete()`` deletes each page
before asking the next; it used to leave versions behind, and DeleteBucket then answered
BucketNotEmpty. In process, through the gateway (``tests.integration.test_s3_tenancy``).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens
from tests.integration.test_s3_tenancy import gateway, run, s3_client

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]


def versioning(s3: Any, bucket: str, status: str) -> Any:
    conf = {"Status": status}
    return run(s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration=conf)


def ids(page: dict[str, Any]) -> list[tuple[str, str]]:
    return [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]


async def test_a_page_after_a_version_deleted_since_goes_on_with_the_older_ones(
    inproc: InProcessCluster,
) -> None:
    api = inproc.api.url
    (alice_t,) = await tokens(api, "alice")
    async with gateway(inproc) as url:
        s3 = await s3_client(api, alice_t, url)
        await run(s3.create_bucket, Bucket="vpg")
        await versioning(s3, "vpg", "Enabled")
        for i in range(5):
            await run(s3.put_object, Bucket="vpg", Key="k", Body=f"v{i}".encode())
        await run(s3.put_object, Bucket="vpg", Key="l", Body=b"l")
        every = ids(await run(s3.list_object_versions, Bucket="vpg"))
        first = await run(s3.list_object_versions, Bucket="vpg", MaxKeys=2)
        assert ids(first) == every[:2]
        assert first["IsTruncated"]
        marker = (first["NextKeyMarker"], first["NextVersionIdMarker"])
        assert marker == every[1]
        await run(s3.delete_object, Bucket="vpg", Key="k", VersionId=marker[1])
        rest = await run(
            s3.list_object_versions, Bucket="vpg", KeyMarker=marker[0], VersionIdMarker=marker[1]
        )
        assert ids(rest) == every[2:]  # k's three older versions, then l


async def test_boto3_deleting_each_page_of_versions_empties_the_bucket(
    inproc: InProcessCluster,
) -> None:
    """Numbered versions and a ``null`` one (written while versioning was suspended)
    among them: deleting the ``null`` marker version too leaves nothing behind."""
    api = inproc.api.url
    (alice_t,) = await tokens(api, "alice")
    async with gateway(inproc) as url:
        s3 = await s3_client(api, alice_t, url)
        await run(s3.create_bucket, Bucket="vdel")
        await versioning(s3, "vdel", "Enabled")
        for i in range(3):
            await run(s3.put_object, Bucket="vdel", Key="k", Body=f"v{i}".encode())
        await versioning(s3, "vdel", "Suspended")
        await run(s3.put_object, Bucket="vdel", Key="k", Body=b"null")
        await versioning(s3, "vdel", "Enabled")
        for i in range(2):
            await run(s3.put_object, Bucket="vdel", Key="k", Body=f"w{i}".encode())
            await run(s3.put_object, Bucket="vdel", Key="m", Body=f"m{i}".encode())
        assert len(ids(await run(s3.list_object_versions, Bucket="vdel"))) == 8
        res = boto3.resource("s3", endpoint_url=url, region_name="us-east-1")
        res.meta.client = s3
        await run(res.Bucket("vdel").object_versions.page_size(2).delete)
        assert ids(await run(s3.list_object_versions, Bucket="vdel")) == []
        await run(s3.delete_bucket, Bucket="vdel")
