"""The gateway's pure parts of ACLs, CORS and listings: which ACL grants map onto the
namespace's access (the rest is 501), CORS rules as S3 matches them, and list markers."""

from __future__ import annotations

import pytest

from dfs.s3 import acl, cors, listing
from dfs.s3.errors import S3Error

XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def policy(*grants: str) -> bytes:
    body = "".join(f"<Grant>{g}</Grant>" for g in grants)
    return (
        f'<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Owner><ID>t1</ID></Owner><AccessControlList>{body}</AccessControlList>"
        f"</AccessControlPolicy>"
    ).encode()


def user(ident: str, permission: str) -> str:
    return (
        f'<Grantee {XSI} xsi:type="CanonicalUser"><ID>{ident}</ID></Grantee>'
        f"<Permission>{permission}</Permission>"
    )


ALL = f'<Grantee {XSI} xsi:type="Group"><URI>{acl.ALL_USERS}</URI></Grantee>'


def test_policies_that_map_and_those_that_do_not() -> None:
    got = acl._read_policy(
        policy(
            user("t1", "FULL_CONTROL"),
            ALL + "<Permission>READ</Permission>",
            user("t2", "READ"),
            user("t2", "WRITE"),
        ),
        "t1",
    )
    assert got == [(acl.ALL_USERS, "READ"), ("t2", "READ"), ("t2", "WRITE")]
    for bad in (
        ALL + "<Permission>WRITE</Permission>",
        user("t2", "READ_ACP"),
        user("t2", "FULL_CONTROL"),
    ):
        with pytest.raises(S3Error) as exc:
            acl._read_policy(policy(bad), "t1")
        assert exc.value.status == 501
    with pytest.raises(S3Error) as exc:
        acl.canned("authenticated-read")
    assert exc.value.status == 501
    assert acl.canned("public-read") == "public-read"
    with pytest.raises(S3Error) as exc:
        acl._read_policy(b"<AccessControlPolicy><Owner/></AccessControlPolicy>", "t1")
    assert exc.value.code == "MalformedXML"


def test_cors_rules_match_as_s3() -> None:
    rules = cors.parse_rules(
        b"<CORSConfiguration><CORSRule><AllowedOrigin>https://*.example.com</AllowedOrigin>"
        b"<AllowedMethod>PUT</AllowedMethod><AllowedHeader>x-amz-*</AllowedHeader>"
        b"<MaxAgeSeconds>60</MaxAgeSeconds></CORSRule></CORSConfiguration>"
    )
    (rule,) = rules
    assert rule.matches("https://a.example.com", "PUT", ["X-Amz-Date"])
    assert not rule.matches("https://a.example.com", "PUT", ["Content-Type"])
    assert not rule.matches("https://a.example.com", "GET", [])
    assert not rule.matches("http://a.example.com", "PUT", [])
    assert rule.answer("https://a.example.com")["Access-Control-Max-Age"] == "60"
    for bad in (
        b"<CORSConfiguration/>",
        b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule>"
        b"</CORSConfiguration>",
        b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
        b"<AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>",
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><CORSConfiguration/>',
    ):
        with pytest.raises(S3Error) as exc:
            cors.parse_rules(bad)
        assert exc.value.status == 400


def test_a_marker_that_is_a_common_prefix_rolls_up() -> None:
    assert listing.rolls_up("a/", "", "/")
    assert listing.rolls_up("p/a/", "p/", "/")
    assert not listing.rolls_up("a/b", "", "/")
    assert not listing.rolls_up("a/", "", "")
    assert not listing.rolls_up("a/b/", "", "/")
    assert not listing.rolls_up("q/", "p/", "/")
