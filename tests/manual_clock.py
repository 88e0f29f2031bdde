"""A clock a test moves by hand, for code that takes a ``clock`` (caches that expire)."""

from __future__ import annotations


class Clock:
    """``time.monotonic`` stand-in: ``now`` moves only when a test sets it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
