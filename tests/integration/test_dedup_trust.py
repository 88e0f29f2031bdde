"""The server never trusts a client's claim for dedup (issue 12 item 6).

A client can commit a file whose declared whole-file sha256 is not the hash of its chunks.
Such a file must never be answered for the genuine bytes: ``POST /upload`` of them stores
them (it used to answer 409 pointing at the decoy, and the genuine bytes were never stored),
and ``/check`` names only files whose bytes the servers verified, or whose manifest matches
the one the caller proves with ``manifest_sha256``."""

from __future__ import annotations

import hashlib
import io
import random
from typing import Any

import pytest

from dfs.api import content_check
from dfs.api.context import VERIFIED
from dfs.chunking import ChunkerProfile
from tests.integration.conftest import InProcessCluster
from tests.integration.test_security import tenant_tokens
from tests.integration.test_seed_api import req

pytestmark = pytest.mark.integration


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunk_ids(data: bytes) -> list[tuple[str, bytes]]:
    """The chunks POST /upload cuts ``data`` into (the default profile)."""
    return [(c.chunk_id, bytes(c.data)) for c in ChunkerProfile.default().split(io.BytesIO(data))]


def manifest_sha256(data: bytes) -> str:
    return sha("".join(c for c, _ in chunk_ids(data)).encode())


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the files /check reads and hashes from now on (in this test)."""
    reads: list[str] = []
    real_hash = content_check._hash_of

    async def counting(coord: Any, rec: Any) -> str:
        reads.append(rec.file_id)
        return await real_hash(coord, rec)

    monkeypatch.setattr(content_check, "_hash_of", counting)
    return reads


async def commit_by_hand(api: str, token: str, name: str, data: bytes, declared: str) -> str:
    """Commit ``data`` as a client would (its chunks sent through the proxy route), declaring
    ``declared`` as its whole-file sha256."""
    chunks = chunk_ids(data)
    body: dict[str, Any] = {
        "name": name,
        "size": len(data),
        "sha256": declared,
        "chunker": str(ChunkerProfile.default()),
        "chunks": [{"sha256": c, "size": len(b)} for c, b in chunks],
    }
    status, plan, _ = await req("POST", f"{api}/init-upload", token, json=body)
    assert status == 201, plan
    file_id = plan["file_id"]
    receipts = {}
    for c, b in dict(chunks).items():
        query = f"chunk_id={c}&file_id={file_id}"
        status, got, _ = await req("PUT", f"{api}/proxy-chunk-upload?{query}", token, data=b)
        assert status == 201, got
        receipts[c] = got["receipt"]
    status, done, _ = await req(
        "POST", f"{api}/finalize-upload", token, json={"file_id": file_id, "receipts": receipts}
    )
    assert status == 200, done
    return str(file_id)


async def test_a_false_sha256_claim_never_stands_for_the_genuine_bytes(
    inproc: InProcessCluster,
) -> None:
    api = inproc.api.url
    (token,) = await tenant_tokens(api, "mallory")
    genuine = random.Random(11).randbytes(700_000)
    decoy_bytes = random.Random(12).randbytes(500_000)
    decoy = await commit_by_hand(api, token, "decoy", decoy_bytes, declared=sha(genuine))

    status, check, _ = await req("GET", f"{api}/check?sha256={sha(genuine)}", token)
    assert status == 200
    assert check == {"exists": False, "file": None}  # the decoy's claim is not taken
    proof = manifest_sha256(genuine)
    status, check, _ = await req(
        "GET", f"{api}/check?sha256={sha(genuine)}&manifest_sha256={proof}", token
    )
    assert check["exists"] is False

    status, body, _ = await req("POST", f"{api}/upload?filename=real", token, data=genuine)
    assert status == 201, body  # stored, not 409 pointing at the decoy
    assert body["file_id"] != decoy
    assert body["sha256"] == sha(genuine)
    status, link, _ = await req("GET", f"{api}/download/{body['file_id']}", token)
    status, got, _ = await req("GET", link["download_url"], token=None)
    assert got == genuine
    # again: never the decoy (a 409 names the genuine file, or the bytes are stored again)
    status, again, _ = await req("POST", f"{api}/upload?filename=real2", token, data=genuine)
    assert status in (201, 409), again
    assert again["file_id"] != decoy
    status, check, _ = await req("GET", f"{api}/check?sha256={sha(genuine)}", token)
    assert check["file"] is None or check["file"]["file_id"] != decoy


async def test_check_names_verified_files_and_takes_a_manifest_proof(
    inproc: InProcessCluster,
) -> None:
    api = inproc.api.url
    (token,) = await tenant_tokens(api, "honest")
    # committed by a client (the API never saw the bytes): /check reads and hashes it
    data = random.Random(21).randbytes(1_500_000)
    file_id = await commit_by_hand(api, token, "client", data, declared=sha(data))
    status, check, _ = await req("GET", f"{api}/check?sha256={sha(data)}", token)
    assert status == 200
    assert check["exists"] is True
    assert check["file"]["file_id"] == file_id
    proof = manifest_sha256(data)
    status, check, _ = await req(
        "GET", f"{api}/check?sha256={sha(data)}&manifest_sha256={proof}", token
    )
    assert check["file"]["file_id"] == file_id
    status, check, _ = await req(
        "GET", f"{api}/check?sha256={sha(data)}&manifest_sha256={'0' * 64}", token
    )
    assert check == {"exists": False, "file": None}
    status, check, _ = await req("GET", f"{api}/check?sha256={sha(data)}&manifest_sha256=zz", token)
    assert status == 400
    # the same bytes through POST /upload: 409 naming it (same manifest)
    status, body, _ = await req("POST", f"{api}/upload?filename=again", token, data=data)
    assert status == 409, body
    assert body["file_id"] == file_id


async def test_a_claim_found_true_is_recorded_for_every_api_process(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's true claim, once hashed by /check (or matched by POST /upload's own hash),
    is stored as verified: no API process reads the file again to answer for it."""
    api = inproc.api.url
    (token,) = await tenant_tokens(api, "carol")
    data = random.Random(41).randbytes(900_000)
    other = random.Random(42).randbytes(300_000)
    file_id = await commit_by_hand(api, token, "client", data, declared=sha(data))
    second = await commit_by_hand(api, token, "client2", other, declared=sha(other))
    assert (await inproc.api.meta.get_file(file_id)).sha256_verified is False
    status, check, _ = await req("GET", f"{api}/check?sha256={sha(data)}", token)
    assert check["file"]["file_id"] == file_id
    assert (await inproc.api.meta.get_file(file_id)).sha256_verified is True
    # POST /upload of a claimed file's bytes: its hash and manifest match, so it is verified
    status, body, _ = await req("POST", f"{api}/upload?filename=again", token, data=other)
    assert status == 409, body
    assert body["file_id"] == second
    assert (await inproc.api.meta.get_file(second)).sha256_verified is True
    # an API process that never hashed them (this one's cache emptied) reads neither again
    monkeypatch.setattr(inproc.api.runner.app[VERIFIED], "known", lambda _file_id: None)
    reads = count_reads(monkeypatch)
    for content, expected in ((data, file_id), (other, second)):
        status, check, _ = await req("GET", f"{api}/check?sha256={sha(content)}", token)
        assert check["file"]["file_id"] == expected
    assert reads == []


async def test_a_false_claim_committed_first_does_not_cost_dedup_for_the_genuine_bytes(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metadata store keeps verified files apart from claims: once the genuine bytes are
    stored through POST /upload (the API hashed them), they are the ones found, by /check
    and by the next POST /upload (409 naming them), though a decoy claiming their sha256
    was committed first; and every API process knows it (the flag is stored, not cached)."""
    api = inproc.api.url
    (token,) = await tenant_tokens(api, "trudy")
    genuine = random.Random(31).randbytes(600_000)
    decoy = await commit_by_hand(
        api, token, "decoy", random.Random(32).randbytes(400_000), declared=sha(genuine)
    )
    status, body, _ = await req("POST", f"{api}/upload?filename=real", token, data=genuine)
    assert status == 201, body
    real = body["file_id"]
    assert real != decoy
    stored = await inproc.api.meta.get_file(real)
    assert stored.sha256_verified is True
    assert (await inproc.api.meta.get_file(decoy)).sha256_verified is False
    # the same bytes again: 409 naming the verified copy, not a third copy
    status, again, _ = await req("POST", f"{api}/upload?filename=real2", token, data=genuine)
    assert status == 409, again
    assert again["file_id"] == real
    # found without being read again, as by an API process that never saw them
    reads = count_reads(monkeypatch)
    status, check, _ = await req("GET", f"{api}/check?sha256={sha(genuine)}", token)
    assert status == 200
    assert check["exists"] is True
    assert check["file"]["file_id"] == real
    assert reads == []
    # deleting the verified copy leaves only the decoy's claim: never answered for them
    status, _, _ = await req("DELETE", f"{api}/file/{real}", token)
    assert status == 200
    status, check, _ = await req("GET", f"{api}/check?sha256={sha(genuine)}", token)
    assert check == {"exists": False, "file": None}
