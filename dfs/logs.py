"""Process logging for ``dfs-api`` and ``dfs-node``: text lines, or one JSON object per line.

``DFS_LOG_FORMAT=json`` writes ``{"ts", "level", "logger", "message"}`` (plus ``exc`` with the
traceback, and any ``extra=`` fields a call passes) for log shippers such as journald ->
CloudWatch or Loki; ``text`` (the default) keeps the human-readable form. ``DFS_LOG_LEVEL``
sets the level. Standard library only.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from dfs.errors import ConfigError

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(env: Mapping[str, str]) -> None:
    """Set up the root logger from DFS_LOG_LEVEL and DFS_LOG_FORMAT; ConfigError if invalid."""
    level = (env.get("DFS_LOG_LEVEL") or "INFO").strip().upper()
    if level not in LEVELS:
        raise ConfigError("DFS_LOG_LEVEL", level, f"must be one of {', '.join(LEVELS)}")
    fmt = (env.get("DFS_LOG_FORMAT") or "text").strip().lower()
    if fmt not in LOG_FORMATS:
        raise ConfigError("DFS_LOG_FORMAT", fmt, "must be 'text' or 'json'")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
