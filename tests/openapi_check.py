"""Check HTTP answers and aiohttp routers against the OpenAPI descriptions in dfs/openapi/.

``SpecChecker(path).validate(method, route, status, body)`` raises ``AssertionError`` naming
the operation when an answer's status is not documented or its JSON body does not match the
documented schema. ``router_diff(app, checker)`` lists routes missing on either side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from aiohttp import web

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


class SpecChecker:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.spec: dict[str, Any] = yaml.safe_load(path.read_text())

    def operations(self) -> set[tuple[str, str]]:
        return {
            (method.upper(), route)
            for route, item in self.spec["paths"].items()
            for method in item
            if method in METHODS
        }

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node and len(node) == 1:
            target: Any = self.spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def validate(self, method: str, route: str, status: int, body: bytes | Any) -> None:
        op = self.spec["paths"].get(route, {}).get(method.lower())
        assert op is not None, f"{method} {route} is not in {self.path.name}"
        responses = op["responses"]
        resp = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        resp = resp or responses.get("default")
        assert resp is not None, (
            f"{method} {route} answered {status}, not documented in {self.path.name} "
            f"(documented: {sorted(responses)})"
        )
        content = self._resolve(resp).get("content", {})
        if "application/json" not in content or method.upper() == "HEAD":
            return
        data = json.loads(body) if isinstance(body, bytes | bytearray | str) else body
        schema = dict(content["application/json"]["schema"])
        schema["components"] = self.spec["components"]  # local $refs resolve against this
        try:
            jsonschema.Draft202012Validator(schema).validate(data)
        except jsonschema.ValidationError as exc:
            raise AssertionError(
                f"{method} {route} {status}: body violates {self.path.name}: {exc.message} "
                f"at {list(exc.absolute_path)}"
            ) from None


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path) of every route; the HEAD aiohttp adds beside each GET is left out."""
    ops = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        assert path, f"route {route} has no path"
        ops.add((route.method, path))
    return {(m, p) for m, p in ops if not (m == "HEAD" and ("GET", p) in ops)}


def router_diff(app: web.Application, checker: SpecChecker) -> str:
    """An empty string if router and spec agree, else what to add where."""
    in_router, in_spec = router_operations(app), checker.operations()
    lines = []
    if missing := sorted(in_router - in_spec):
        lines.append(
            f"routes served but missing from {checker.path} (add them under `paths`):\n"
            + "\n".join(f"  {m} {p}" for m, p in missing)
        )
    if extra := sorted(in_spec - in_router):
        lines.append(
            f"operations in {checker.path} that the router does not serve:\n"
            + "\n".join(f"  {m} {p}" for m, p in extra)
        )
    return "\n".join(lines)
