"""A signed object URL names the object, never the file record behind it.

An object's version links a file whose record keeps the name it was uploaded under (the
uploader's local file name, ``/upload?filename=``). ``GET /objects/…`` answers with the key's
last segment; a share link from ``/object-url`` answered with the file record's name, so
anyone holding the link learnt a name the bucket's owner never published. The name the link
answers with is now part of what its signature binds.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from tests.integration.conftest import InProcessCluster
from tests.integration.test_security import tenant_tokens

pytestmark = pytest.mark.integration


async def test_a_share_link_names_the_key_not_the_uploaded_file(inproc: InProcessCluster) -> None:
    url = inproc.api.url
    (alice,) = await tenant_tokens(url, "alice")
    h = {"Authorization": f"Bearer {alice}"}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/buckets", json={"name": "pub"}, headers=h) as r:
            assert r.status == 201
        q = {"bucket": "pub", "key": "share/doc.txt", "filename": "private-payroll-2024.txt"}
        async with s.post(f"{url}/upload", params=q, data=b"hello", headers=h) as r:
            assert r.status == 201, await r.text()
        async with s.get(f"{url}/object-url/pub/share/doc.txt", headers=h) as r:
            assert r.status == 200
            link = (await r.json())["download_url"]
        assert "private-payroll" not in link
        async with s.get(link) as r:
            assert r.status == 200
            assert await r.read() == b"hello"
            cd = r.headers["Content-Disposition"]
        assert "private-payroll" not in cd
        assert 'filename="doc.txt"' in cd
        # the name is signed: another one in the link is refused, and so is none at all
        parts = urlsplit(link)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        for changed in (
            {**query, "name": "evil.html"},
            {k: v for k, v in query.items() if k != "name"},
        ):
            forged = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(changed)}"
            async with s.get(forged) as r:
                assert r.status == 403, (changed, r.status)
