"""Times on the command line: a point in time (``download --at``, ``prune --before``) and a
length of time (``prune --keep-within``), as click parameter types giving Unix seconds."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import click

MAX_TIME = 253402300799.0
"""The last second of year 9999: later times (and NaN) are no time ``--at`` takes."""


_YEAR_MONTH = re.compile(r"([0-9]{4})(?:-([0-9]{2}))?")


class PointInTime(click.ParamType[float]):
    """A time on the command line: ISO 8601 (``2026-12-05T14:00:00Z``; local time when it
    names no zone; a date alone is its midnight, a year or a month (``2026``, ``2026-12``)
    its first day's) or Unix seconds; as Unix seconds."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        short = _YEAR_MONTH.fullmatch(text)
        try:
            if short:  # ISO 8601's reduced precision: a year (not 2026 s after 1970) or month
                seconds = datetime(int(short[1]), int(short[2] or 1), 1).timestamp()
            else:
                seconds = float(text)
        except ValueError:
            try:  # naive: local time, as ``date`` prints it
                seconds = datetime.fromisoformat(text).timestamp()
            except (ValueError, OverflowError, OSError):
                seconds = math.nan
        if not 0 <= seconds <= MAX_TIME:
            self.fail(
                f"{value!r} is not a time: ISO 8601 (2026-12-05T14:00:00Z, or local time "
                "2026-12-05 14:00) or Unix seconds",
                param,
                ctx,
            )
        return seconds


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:[0-9]{1,12}[smhdw])+")
_PART = re.compile(r"([0-9]{1,12})([smhdw])")


class Duration(click.ParamType[float]):
    """A length of time: a count and a unit, or several (``30d``, ``1w12h``; s, m for
    minutes, h, d, w); as seconds, at most ``MAX_TIME``."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()  # units as written: 6M is no six minutes
        seconds = math.nan
        if _DURATION.fullmatch(text):
            seconds = float(sum(int(n) * UNITS[u] for n, u in _PART.findall(text)))
        if not 0 <= seconds <= MAX_TIME:
            self.fail(
                f"{value!r} is not a length of time: a count and a unit, or several (30d, "
                "1w12h; s, m for minutes, h, d, w)",
                param,
                ctx,
            )
        return seconds
