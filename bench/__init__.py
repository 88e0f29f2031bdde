"""Benchmarks of dfs beside the tools users would pick instead (see ``bench/README.md``).

Every bench measures dfs as an install leaves it: with its modules' bytecode cached. The
project's install is editable, and where ``PYTHONDONTWRITEBYTECODE`` is set (as on the
machines these figures come from) nothing writes that cache, so every ``dfs-client`` start
would compile each dfs module it imports (~70 ms a start, more for the servers), a cost no
installed wheel pays. So importing this package compiles what is stale (~6 ms when
nothing is: a stat per module).
"""

from __future__ import annotations

import compileall
import contextlib
import sys
from pathlib import Path

import dfs

with contextlib.redirect_stdout(sys.stderr):  # its errors, if any, not in a bench's table
    compileall.compile_dir(Path(dfs.__file__).parent, quiet=1)
