"""The CLI's text output for people: sizes in binary units, times as local dates, tables.

``--json`` prints the API's raw numbers instead (bytes, epoch seconds); these functions only
shape the text form, so a script reading --json never depends on them. No click here.

Names are whatever an uploader chose: ``printable`` escapes what a terminal would act on
(control characters such as ESC, and invisible format characters such as a right-to-left
override) in every field of text output, as ``ls -b`` does; --json stays exact.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterable
from typing import Any

# the table of `dfs-client --help` (\b: click keeps these lines as they are)
EXIT_CODES = """\b
exit  meaning
0     success (check: the bytes are stored)
1     unexpected error
2     invalid request or usage
3     authentication failed
4     not found
5     conflict (e.g. upload not complete)
6     integrity error (bytes did not match their hash)
7     cluster unavailable / replication failed / full
10    check: the bytes are not stored yet
23    some files were skipped (each on a Skipped: line); the rest transferred
130   interrupted (Ctrl-C); run the same upload or download again to resume"""
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def printable(text: object) -> str:
    """``text`` with every character a terminal could act on escaped (``\\x1b``, ``\\u202e``,
    ``\\t``; a backslash doubled, so an escape is never ambiguous)."""
    s = str(text)
    if s.isprintable() and "\\" not in s:
        return s
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``; whole bytes below 1 KiB."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_time(epoch: float | None) -> str:
    """Epoch seconds as a local date and time, ``-`` for none."""
    if not epoch:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def ago(epoch: float | None, now: float | None = None) -> str:
    if not epoch:
        return "never"
    seconds = max(0.0, (time.time() if now is None else now) - epoch)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def table(rows: Iterable[Iterable[str]]) -> str:
    """Left-aligned columns two spaces apart."""
    cells = [list(r) for r in rows]
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(max(map(len, cells)))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells)


def file_text(body: dict[str, Any]) -> str:
    """``stat``: a file's metadata, one field a line."""
    rows = [
        ("name", printable(body.get("name", ""))),
        ("file id", str(body.get("file_id", ""))),
        ("size", f"{human_bytes(body.get('size', 0))} ({body.get('size', 0)} bytes)"),
        ("sha256", str(body.get("sha256", ""))),
        ("chunks", f"{body.get('chunks', '')} ({body.get('chunker', '')})"),
        ("state", str(body.get("state", ""))),
        ("created", human_time(body.get("created_at"))),
    ]
    if isinstance(body.get("mode"), int):  # files uploaded with their mode and mtime
        rows.append(("mode", f"{body['mode']:04o} ({stat.filemode(stat.S_IFREG | body['mode'])})"))
    if body.get("mtime") is not None:
        rows.append(("modified", human_time(body["mtime"])))
    known = {"name", "file_id", "size", "sha256", "chunks", "chunker", "state", "created_at"}
    known |= {"mode", "mtime"}
    rows += [(printable(k), printable(v)) for k, v in sorted(body.items()) if k not in known]
    return table((f"{k}:", v) for k, v in rows)


def stats_text(body: dict[str, Any]) -> str:
    """``stats``: dedup and cluster counters."""
    rows = [
        ("files", str(body.get("total_files", 0))),
        ("logical size", human_bytes(body.get("logical_bytes", 0))),
        ("stored size", f"{human_bytes(body.get('stored_bytes', 0))} (unique chunks)"),
        ("with replicas", human_bytes(body.get("replicated_bytes", 0))),
        ("unique chunks", str(body.get("unique_chunks", 0))),
        ("duplicates avoided", str(body.get("duplicates_avoided", 0))),
        ("saved by dedup", human_bytes(body.get("total_bytes_saved", 0))),
        ("dedup ratio", f"{float(body.get('dedup_ratio', 1.0)):.2f}x"),
        ("live nodes", str(body.get("live_nodes", 0))),
        (
            "replication",
            f"factor {body.get('replication_factor')}, "
            f"{body.get('replication_strategy', '')}".rstrip(", "),
        ),
    ]
    repair = body.get("repair")
    if isinstance(repair, dict):
        when = "running" if repair.get("running") else human_time(repair.get("finished_at"))
        lag = human_bytes(repair.get("under_replicated_bytes", 0))
        rows.append(
            (
                "last repair",
                f"{when}: {repair.get('under_replicated', 0)} chunks under-replicated "
                f"({lag}), {repair.get('repaired', 0)} repaired",
            )
        )
    return table((f"{k}:", v) for k, v in rows)


def nodes_text(body: dict[str, Any], now: float | None = None) -> str:
    """``nodes``: one row per storage node."""
    head = f"{body['live']} live, replication factor {body['replication_factor']}"
    rows = [("NODE", "URL", "STATUS", "USED", "CAPACITY", "HEARTBEAT")]
    for n in body["nodes"]:
        cap = int(n.get("capacity_bytes") or 0)
        used = int(n.get("used_bytes") or 0)
        pct = f" ({100 * used / cap:.0f}%)" if cap else ""
        rows.append(
            (
                str(n["node_id"]),
                str(n["url"]),
                str(n["status"]),
                human_bytes(used) + pct,
                human_bytes(cap) if cap else "-",
                ago(n.get("last_heartbeat"), now),
            )
        )
    return f"{head}\n{table(rows)}"


def check_text(body: dict[str, Any]) -> str:
    """``check``: is the file stored already?"""
    if body["exists"]:
        return f"exists: {body['file']['file_id']} {printable(body['file']['name'])}"
    return f"new: {body['sha256']}"


def listing_line(f: dict[str, Any], long: bool = False) -> str:
    """``ls``: id, size in bytes, sha256 prefix, name (tab-separated for cut and awk);
    ``long`` puts the stored mode and mtime (``-`` when not stored) before the name."""
    cols = [str(f["file_id"]), str(f["size"]), str(f["sha256"])[:12]]
    if long:
        mode = f.get("mode")
        cols.append(stat.filemode(stat.S_IFREG | mode) if isinstance(mode, int) else "-")
        cols.append(human_time(f.get("mtime")))
    return "\t".join([*cols, printable(f["name"])])


def verify_text(healthy: bool, chunks: int, rf: int, under: list[dict[str, Any]]) -> str:
    """``verify``: ok, or one line per under-replicated chunk."""
    if healthy:
        return f"ok: {chunks} chunks, each with {rf} healthy copies"
    return "\n".join(
        f"under-replicated: chunk {b['sha256'][:12]} at {b['offset']}: "
        f"{b['healthy_copies']}/{rf} healthy copies"
        for b in under
    )


def tokens_text(body: dict[str, Any]) -> str:
    rows = [("ID", "TENANT", "ROLE", "CREATED", "LABEL")]
    for t in body["tokens"]:
        created = human_time(t["created_at"])
        rows.append((t["token_id"], t["tenant"], t["role"], created, printable(t["label"])))
    return table(rows)


def whoami_text(body: dict[str, Any]) -> str:
    label = f" ({printable(body['label'])})" if body.get("label") else ""
    return f"tenant {body['tenant']}, role {body['role']}, token {body['token_id']}{label}"
