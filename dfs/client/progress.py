"""Progress bars for the CLI: tqdm on stderr, only when stderr is a terminal.

Output on stdout (text or ``--json``) is never touched. ``--quiet`` turns bars off; so does
a stderr that is a pipe or a file, so scripts and CI logs get no control characters.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class Progress:
    """A byte counter with a bar (bytes, rate, ETA) when enabled; callable with a byte count."""

    def __init__(self, desc: str, total: int | None = None, *, enabled: bool = True) -> None:
        self._bar: Any = None
        if enabled:
            # imported only for a bar: scripts and --quiet runs (most restores) do not pay
            # for loading tqdm at every start
            from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs pinned

            self._bar = tqdm(
                total=total,
                desc=desc,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
            )

    @classmethod
    def for_terminal(cls, desc: str, total: int | None, quiet: bool) -> Progress:
        return cls(desc, total, enabled=not quiet and sys.stderr.isatty())

    def __call__(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def add_total(self, n: int) -> None:
        if self._bar is not None:
            self._bar.total = (self._bar.total or 0) + n
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
