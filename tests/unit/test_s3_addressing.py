"""Virtual-host-style addressing: which Host names which bucket, and DFS_S3_DOMAIN's
validation (the requests themselves are driven by boto3 in tests/e2e/test_s3_clients.py)."""

from __future__ import annotations

import pytest

from dfs.errors import ConfigError
from dfs.s3.addressing import bucket_of_host
from dfs.s3.main import s3_domain


def test_the_bucket_is_the_host_before_the_domain() -> None:
    domain = "s3.example.com"
    assert bucket_of_host("photos.s3.example.com", domain) == "photos"
    assert bucket_of_host("Photos.S3.Example.com:9100", domain) == "photos"
    assert bucket_of_host("my.dotted.bucket.s3.example.com.", domain) == "my.dotted.bucket"
    for other in ("s3.example.com", "s3.example.com:443", "example.com", "xs3.example.com", ""):
        assert bucket_of_host(other, domain) is None
    assert bucket_of_host("127.0.0.1:9100", domain) is None


def test_the_domain_setting_is_validated() -> None:
    assert s3_domain({}) == ""
    assert s3_domain({"DFS_S3_DOMAIN": "S3.Example.com."}) == "s3.example.com"
    for bad in ("localhost", "*.s3.example.com", "http://s3.example.com", "a..b", "-a.b"):
        with pytest.raises(ConfigError):
            s3_domain({"DFS_S3_DOMAIN": bad})
