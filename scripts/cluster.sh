#!/usr/bin/env bash
# Start, inspect or stop a long-running local cluster: dfs-api on :8080 and 3 dfs-nodes on
# :9001-9003, SQLite metadata and chunk folders under dfs-data/local.
# Usage: bash scripts/cluster.sh start|status|stop [--nodes N] [--replication-factor R] [--dir D]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh
exec python -m dfs.localcluster "$@"
