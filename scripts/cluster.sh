#!/usr/bin/env bash
# Start, inspect or stop a long-running local cluster: dfs-api on :8080 and 3 dfs-nodes on
# :9001-9003, SQLite metadata and chunk folders under dfs-data/local.
# Usage: bash scripts/cluster.sh start|status|stop|env|restart NAME... [--nodes N]
#          [--replication-factor R] [--dir D]
#   start    starts whatever is not running (a dead node is started again) and creates the
#            user tenant "demo" with a token; prints `export DFS_API_URL=... DFS_TOKEN=...`
#            on stdout (everything else on stderr), so `eval "$(bash scripts/cluster.sh start)"`
#   env      prints those export lines again
#   status   exits 0 only when the API and every node are running and live
#   restart  restarts the named processes (api, node1, node2, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec .venv/bin/python -m dfs.localcluster "$@"
