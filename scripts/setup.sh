#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv in .venv and install dfs into it.
# Usage: source scripts/setup.sh [extra]   e.g. "test" installs the test tools too.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extra="${1:-}"
if [ ! -x "$repo/.venv/bin/python" ]; then
  python3 -m venv "$repo/.venv"
fi
# shellcheck disable=SC1091
. "$repo/.venv/bin/activate"
python -m pip install --quiet --disable-pip-version-check --upgrade pip
if [ -n "$extra" ]; then
  python -m pip install --quiet --disable-pip-version-check -e "${repo}[${extra}]"
else
  python -m pip install --quiet --disable-pip-version-check -e "$repo"
fi
