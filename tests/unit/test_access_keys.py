from __future__ import annotations

import pytest

from dfs.access_keys import is_key_id, new_key_id, new_secret, open_secret, seal_secret
from dfs.errors import AuthError


def test_ids_and_secrets_look_like_aws_ones() -> None:
    kid = new_key_id()
    assert is_key_id(kid)
    assert len(kid) == 20
    assert len(new_secret()) == 40
    assert not is_key_id("AKIAIOSFODNN7EXAMPLE")


def test_sealed_secret_opens_only_with_its_key_and_record() -> None:
    sealed = seal_secret(b"k" * 32, "DFSKAAAAAAAAAAAAAAAA", "acme", "s3cr3t")
    assert "s3cr3t" not in sealed
    assert open_secret(b"k" * 32, "DFSKAAAAAAAAAAAAAAAA", "acme", sealed) == "s3cr3t"
    for secret, kid, tenant in [
        (b"x" * 32, "DFSKAAAAAAAAAAAAAAAA", "acme"),
        (b"k" * 32, "DFSKAAAAAAAAAAAAAAAB", "acme"),
        (b"k" * 32, "DFSKAAAAAAAAAAAAAAAA", "evil"),
    ]:
        with pytest.raises(AuthError):
            open_secret(secret, kid, tenant, sealed)
