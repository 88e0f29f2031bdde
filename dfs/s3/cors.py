"""Bucket CORS through S3: Get/Put/DeleteBucketCors (``?cors``, the bucket owner's), the
``OPTIONS`` preflight answered from the bucket's rules, and the CORS headers of actual
requests that carry an ``Origin``.

The rules are kept as a JSON document per bucket in the bucket-configuration store
(``dfs.meta.bucket_config``, kind ``cors``, tied to the bucket's generation so a bucket
created again starts without rules). Matching is S3's: the first rule whose
``AllowedOrigin`` (one ``*`` wildcard at most), ``AllowedMethod`` and every requested header
(``AllowedHeader``, case-insensitive, ``*`` wildcards) match answers; otherwise the preflight
is 403 ``AccessForbidden`` and an actual request gets no CORS headers. Preflights are never
signed (browsers send none), so ``OPTIONS`` passes authentication as anonymous.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import hdrs, web

from dfs.errors import DfsError
from dfs.meta.bucket_config import (
    KIND_CORS,
    MAX_DOCUMENT_BYTES,
    generation_of,
)
from dfs.meta.namespace import BucketRecord
from dfs.s3 import xmlbody
from dfs.s3.context import (
    NAMESPACE,
    bucket_configs,
    owned_bucket,
    xml,
    xml_response,
)
from dfs.s3.errors import S3Error
from dfs.s3.names import OBJECT_PATH, bucket_name

MAX_RULES = 100
METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")


@dataclass(frozen=True)
class Rule:
    origins: list[str]
    methods: list[str]
    headers: list[str]
    expose: list[str]
    max_age: int | None = None
    id: str = ""

    def matches(self, origin: str, method: str, requested: list[str]) -> bool:
        return (
            method in self.methods
            and any(_wild(o, origin) for o in self.origins)
            and all(any(_wild(p.lower(), h.lower()) for p in self.headers) for h in requested)
        )

    def answer(self, origin: str) -> dict[str, str]:
        wildcard = "*" in self.origins
        out = {
            "Access-Control-Allow-Origin": "*" if wildcard else origin,
            "Access-Control-Allow-Methods": ", ".join(self.methods),
            "Vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        }
        if not wildcard:
            out["Access-Control-Allow-Credentials"] = "true"
        if self.expose:
            out["Access-Control-Expose-Headers"] = ", ".join(self.expose)
        if self.max_age is not None:
            out["Access-Control-Max-Age"] = str(self.max_age)
        return out


def _wild(pattern: str, value: str) -> bool:
    if "*" not in pattern:
        return pattern == value
    head, _, tail = pattern.partition("*")
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


def _texts(elem: Any, name: str) -> list[str]:
    return [(c.text or "").strip() for c in xmlbody.children(elem, name)]


def parse_rules(data: bytes) -> list[Rule]:
    root = xmlbody.parse(data, "CORSConfiguration")
    rules = []
    for r in xmlbody.children(root, "CORSRule"):
        methods, origins = _texts(r, "AllowedMethod"), _texts(r, "AllowedOrigin")
        if not methods or not origins:
            raise xmlbody.malformed("a CORSRule needs an AllowedMethod and an AllowedOrigin")
        for m in methods:
            if m not in METHODS:
                raise S3Error(
                    "InvalidRequest",
                    400,
                    f"Found unsupported HTTP method in CORS config. Unsupported method is {m}",
                )
        if any(o.count("*") > 1 for o in origins):
            raise S3Error("InvalidRequest", 400, "AllowedOrigin can have at most one * wildcard")
        age = xmlbody.text(r, "MaxAgeSeconds")
        if age is not None and not age.strip().isdigit():
            raise xmlbody.malformed("MaxAgeSeconds must be a whole number")
        rules.append(
            Rule(
                origins,
                methods,
                _texts(r, "AllowedHeader"),
                _texts(r, "ExposeHeader"),
                None if age is None else int(age),
                (xmlbody.text(r, "ID") or "").strip(),
            )
        )
    if not 1 <= len(rules) <= MAX_RULES:
        raise xmlbody.malformed(f"a CORS configuration holds 1 to {MAX_RULES} rules")
    return rules


async def load_rules(request: web.Request, b: BucketRecord) -> list[Rule] | None:
    doc = await bucket_configs(request, "CORS rules").get_bucket_config(
        b.name, generation_of(b.created_at), KIND_CORS
    )
    return None if doc is None else [Rule(**r) for r in json.loads(doc)]


async def put_bucket_cors(request: web.Request) -> web.Response:
    b = await owned_bucket(request)
    rules = parse_rules(await xmlbody.read_body(request))
    doc = json.dumps([asdict(r) for r in rules])
    if len(doc) > MAX_DOCUMENT_BYTES:
        raise xmlbody.malformed("the CORS configuration is too large")
    await bucket_configs(request, "CORS rules").put_bucket_config(
        b.name, generation_of(b.created_at), KIND_CORS, doc
    )
    return web.Response(status=200)


async def get_bucket_cors(request: web.Request) -> web.Response:
    rules = await load_rules(request, await owned_bucket(request))
    if rules is None:
        raise S3Error("NoSuchCORSConfiguration", 404, "The CORS configuration does not exist")
    parts = []
    for r in rules:
        inner = xml("ID", r.id) if r.id else ""
        inner += "".join(xml("AllowedHeader", h) for h in r.headers)
        inner += "".join(xml("AllowedMethod", m) for m in r.methods)
        inner += "".join(xml("AllowedOrigin", o) for o in r.origins)
        inner += "".join(xml("ExposeHeader", h) for h in r.expose)
        inner += xml("MaxAgeSeconds", r.max_age) if r.max_age is not None else ""
        parts.append(f"<CORSRule>{inner}</CORSRule>")
    return xml_response("CORSConfiguration", "".join(parts))


async def delete_bucket_cors(request: web.Request) -> web.Response:
    b = await owned_bucket(request)
    await bucket_configs(request, "CORS rules").delete_bucket_config(b.name, KIND_CORS)
    return web.Response(status=204)


def _forbidden(message: str) -> S3Error:
    return S3Error("AccessForbidden", 403, f"CORSResponse: {message}")


async def preflight(request: web.Request) -> web.Response:
    origin = request.headers.get("Origin")
    method = request.headers.get("Access-Control-Request-Method")
    if not origin:
        raise S3Error("BadRequest", 400, "Insufficient information. Origin request header needed.")
    if not method:
        raise S3Error("BadRequest", 400, "Invalid Access-Control-Request-Method: null")
    b = await request.app[NAMESPACE].bucket(bucket_name(request))
    rules = await load_rules(request, b)
    if rules is None:
        raise _forbidden("CORS is not enabled for this bucket.")
    raw = request.headers.get("Access-Control-Request-Headers", "")
    requested = [h.strip() for h in raw.split(",") if h.strip()]
    for rule in rules:
        if rule.matches(origin, method, requested):
            headers = rule.answer(origin)
            if requested:
                headers["Access-Control-Allow-Headers"] = ", ".join(requested)
            return web.Response(status=200, headers=headers)
    raise _forbidden("This CORS request is not allowed.")


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """An actual request with an Origin gets the matching rule's headers (none otherwise)."""
    origin = request.headers.get("Origin")
    name = request.match_info.get("bucket")
    if not origin or not name or request.method == hdrs.METH_OPTIONS:
        return
    try:
        rules = await load_rules(request, await request.app[NAMESPACE].bucket(name))
    except (DfsError, S3Error):
        return
    for rule in rules or []:
        if rule.matches(origin, request.method, []):
            response.headers.update(rule.answer(origin))
            return


def setup(app: web.Application) -> None:
    """The preflight routes and the hook that adds CORS headers to actual requests."""
    for path in ("/{bucket}", "/{bucket}/", OBJECT_PATH):
        app.router.add_route(hdrs.METH_OPTIONS, path, preflight)
    app.on_response_prepare.append(_on_prepare)
