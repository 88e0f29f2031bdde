#!/usr/bin/env bash
# Set everything up and run the checks and the whole test suite:
#   ruff (lint + format), mypy --strict on dfs/, then pytest (unit, contract, integration, e2e,
#   and the deployment checks, whose tools scripts/ci-tools.sh installs), after checking that
#   a release builds from this tree with the committed, fully hashed lock (scripts/release.sh).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k e2e -x`.
# pytest runs in DFS_TEST_WORKERS worker processes (pytest-xdist; default 3, 0 runs in this
# process): most e2e time is waiting on the processes a test starts, so 3 workers on 2 cores
# took pytest from 28-34 min to 20-25 (bench/README.md, stop 34).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# shellcheck disable=SC1091
. .venv/bin/activate
bash scripts/ci-tools.sh
echo "== ruff"
ruff check dfs tests bench
ruff format --check dfs tests bench
echo "== mypy"
mypy dfs
echo "== release --check"
release_out="$(mktemp -d)"
bash scripts/release.sh --check "$release_out" >/dev/null
rm -rf "$release_out"
echo "== pytest"
python -m pytest -n "${DFS_TEST_WORKERS:-3}" --dist worksteal "$@"
