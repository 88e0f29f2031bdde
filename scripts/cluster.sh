#!/usr/bin/env bash
# Start, inspect or stop a long-running local cluster: dfs-api on :8080, 3 dfs-nodes on
# :9001-9003 and the S3 gateway dfs-s3 on :9100, SQLite metadata and chunk folders under
# dfs-data/local (logs in logs/, e.g. logs/s3.log).
# Usage: bash scripts/cluster.sh start|status|stop|env|restart NAME... [--nodes N]
#          [--replication-factor R] [--dir D] [--api-port P] [--first-node-port P] [--s3-port P]
#   start    starts whatever is not running (a dead node is started again) and creates the
#            user tenant "demo" with a token and an S3 access key; prints
#            `export DFS_API_URL=... DFS_TOKEN=...` and `export AWS_ENDPOINT_URL_S3=...
#            AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_DEFAULT_REGION=...` (for
#            boto3 and the AWS CLI) on stdout (everything else on stderr), so
#            `eval "$(bash scripts/cluster.sh start)"`
#   env      prints those export lines again
#   status   exits 0 only when the API and every node are running and live
#   restart  restarts the named processes (api, node1, node2, ..., s3)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec .venv/bin/python -m dfs.localcluster "$@"
