#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv in .venv and install dfs into it (editable).
# Usage: bash scripts/setup.sh [EXTRA]   e.g. "test" installs the test tools too; then
#        . .venv/bin/activate
# pip runs only when .venv is missing or out of date: a stamp in .venv records the hash of
# pyproject.toml and the extras installed with it (the install is editable, so code changes
# need no reinstall). The other scripts run this file; they never source it, so their own
# arguments can never reach it.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  echo "scripts/setup.sh: run it with bash (then: . .venv/bin/activate), do not source it" >&2
  return 2
fi
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extra="${1:-}"
if [ "$#" -gt 1 ] || { [ -n "$extra" ] && ! [[ "$extra" =~ ^[a-z][a-z0-9_-]*$ ]]; }; then
  echo "usage: bash scripts/setup.sh [EXTRA]   (an extra of pyproject.toml, e.g. test)" >&2
  exit 2
fi
if [ -n "$extra" ] && ! grep -q "^${extra} = \[" "$repo/pyproject.toml"; then
  echo "setup.sh: pyproject.toml has no extra '$extra'" >&2
  exit 2
fi
stamp="$repo/.venv/.dfs-setup"
want="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)"
# The install is editable, so pip writes no bytecode for dfs; Python writes it at a module's
# first import, unless PYTHONDONTWRITEBYTECODE is set: then every process compiles every dfs
# module it imports (~70 ms of each dfs-client start, bench/README.md, stop 41). Compiled
# here on every run (modules unchanged since are skipped: ~0.1 s), as a wheel's install does;
# a module that does not compile is shown (on stderr) and left to the tests to report.
compile_dfs() {
  "$repo/.venv/bin/python" -m compileall -q -j0 "$repo/dfs" >&2 || true
}
if [ -x "$repo/.venv/bin/python" ] && [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$want" ] &&
  { [ -z "$extra" ] || grep -qx "$extra" "$stamp"; }; then
  compile_dfs
  exit 0  # up to date
fi
if [ ! -x "$repo/.venv/bin/python" ]; then
  python3 -m venv "$repo/.venv"
fi
py="$repo/.venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check --upgrade pip
if [ -n "$extra" ]; then
  "$py" -m pip install --quiet --disable-pip-version-check -e "${repo}[${extra}]"
else
  "$py" -m pip install --quiet --disable-pip-version-check -e "$repo"
fi
# a new pyproject.toml hash starts a new stamp; the same hash adds the extra to it
lines="$want"
if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$want" ]; then
  lines="$(cat "$stamp")"
fi
if [ -n "$extra" ]; then
  lines="$lines"$'\n'"$extra"
fi
printf '%s\n' "$lines" | awk 'NF && !seen[$0]++' > "$stamp"
compile_dfs
