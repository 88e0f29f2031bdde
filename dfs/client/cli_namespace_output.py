"""Text for people of the namespace commands (``dfs.client.cli_namespace``): listing lines,
usage tables. No click here; ``--json`` output is the API's objects as they are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dfs.client.cli_output import human_bytes, human_time, printable, table


def entry_line(e: Mapping[str, Any], base: str, long: bool) -> str:
    """One ``ls`` line: a folder (``prefix``) or an object, named relative to ``base``."""
    if "prefix" in e:
        return f"{'DIR':>10}  {'':16}  {printable(e['prefix'][len(base) :])}"
    name = printable(e["key"][len(base) :] or e["key"])
    size = "-" if e.get("is_delete_marker") else human_bytes(e["size"])
    line = f"{size:>10}  {human_time(e['created_at'])[:16]:16}  {name}"
    if long:
        flags = []
        if e.get("is_delete_marker"):
            flags.append("delete-marker")
        if e.get("is_latest") is False:
            flags.append("old")
        tags = ",".join(f"{k}={v}" for k, v in sorted(e.get("tags", {}).items()))
        extra = [e["version_id"], e.get("content_type", ""), e.get("access", ""), tags, *flags]
        line += "  " + "  ".join(printable(x) for x in extra if x)
    return line


def bucket_line(b: Mapping[str, Any], me: str | None = None) -> str:
    owner = "" if b["owner"] == me else f"  (shared by {printable(b['owner'])})"
    return (
        f"{human_time(b['created_at'])[:16]:16}  {printable(b['name'])}/"
        f"  {b['versioning']}  {b['access']}{owner}"
    )


def usage_text(body: Mapping[str, Any]) -> str:
    """Totals, or one row per prefix/type (``by``), biggest first."""
    if "usage" not in body:
        return table(
            [
                ["objects", str(body["objects"])],
                ["versions", str(body["versions"])],
                ["delete markers", str(body["delete_markers"])],
                ["logical", human_bytes(body["logical_bytes"])],
                ["stored", human_bytes(body["stored_bytes"])],
                ["saved by dedup", human_bytes(body["saved_bytes"])],
            ]
        )
    rows = sorted(body["usage"].items(), key=lambda kv: -kv[1]["logical_bytes"])
    by_type = body.get("by") == "type"
    label = "(no extension)" if by_type else "(top level)"
    head = ["SIZE", "OBJECTS", "VERSIONS", "TYPE" if by_type else "PREFIX"]
    lines = [
        [
            human_bytes(u["logical_bytes"]),
            str(u["objects"]),
            str(u["versions"]),
            printable(k or label) + ("" if by_type or not k else "/"),
        ]
        for k, u in rows
    ]
    return table([head, *lines])


def count(n: int, thing: str) -> str:
    """``1 version``, ``2 versions``."""
    return f"{n} {thing}{'' if n == 1 else 's'}"
