#!/usr/bin/env bash
# Bootstrap the dfs API coordinator on EC2 (run as root by cloud-init, from the instance's user
# data, on every instance the API's Auto Scaling group launches; safe to run again): install a
# pinned dfs release from the deployment's own artifacts bucket into /opt/dfs/venv (hash-checked,
# no package index), create the `dfs` system user, write /etc/dfs/api.env from instance metadata
# (IMDSv2) and SSM Parameter Store, check the DynamoDB tables with `dfs-api init-tables`, then
# install and start the dfs-api unit.
#
# Amazon Linux 2023 only (it ships python3.11 in dnf and the AWS CLI, and its repositories are
# served over HTTPS, the only egress the security groups allow). The Ubuntu branch was dropped:
# Ubuntu's mirrors are plain HTTP, it has no python3.11 in current releases and no AWS CLI.
#
# Inputs (environment):
#   DFS_RELEASE_BUCKET      S3 bucket holding releases (Terraform's artifacts bucket)
#   DFS_RELEASE_VERSION     X.Y.Z: the release under s3://BUCKET/releases/X.Y.Z/ (scripts/release.sh)
#   DFS_RELEASE_SHA256      sha256 of that release's requirements.lock, which pins every file
#   DFS_SSM_PREFIX          SSM path holding cluster-secret, api-secret, admin-token, metrics-token
#   DFS_UNIT_FILE           the dfs-api.service to install
#   DFS_TABLE_PREFIX        DynamoDB table name prefix (may be empty)
#   DFS_API_PORT            listen port (default 8080)
#   DFS_REPLICATION_FACTOR  copies of every chunk (default 2)
#   DFS_REPAIR_GRACE        seconds a down node's copies still count (default 900: longer than
#                           a node's replacement during a rolling upgrade)
#   DFS_API_WORKERS         dfs-api processes on the port (default 1)
#   DFS_PUBLIC_URL          optional: https://api.<domain>, the address signed download and share
#                           links name (behind the TLS load balancer the API sees plain HTTP)
#   DFS_METRICS_GROUP       optional: CloudWatch log group of the metrics; set, the CloudWatch
#                           agent is installed and started (namespace DFS_METRICS_NAMESPACE)
# For tests only (tests/deploy/test_bootstrap_run.py):
#   DFS_ROOT                prefix of every path the script writes or reads (default: none, i.e. /)
#   DFS_IMDS_ENDPOINT       instance metadata service (default http://169.254.169.254)
set -euo pipefail

readonly ROOT="${DFS_ROOT:-}"
readonly IMDS="${DFS_IMDS_ENDPOINT:-http://169.254.169.254}"
readonly DATA_DIR=/var/lib/dfs # as the service sees it; the script writes under $ROOT
readonly VENV=/opt/dfs/venv
readonly ENV_FILE=/etc/dfs/api.env
readonly UNIT=dfs-api.service

log() { printf 'bootstrap_api: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source-path=SCRIPTDIR source=bootstrap_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bootstrap_lib.sh"

boot_begin
DFS_TABLE_PREFIX="${DFS_TABLE_PREFIX:-}"
DFS_METRICS_NAMESPACE="${DFS_METRICS_NAMESPACE:-dfs}"
DFS_API_PORT="${DFS_API_PORT:-8080}"
DFS_REPLICATION_FACTOR="${DFS_REPLICATION_FACTOR:-2}"
DFS_REPAIR_GRACE="${DFS_REPAIR_GRACE:-900}"
DFS_API_WORKERS="${DFS_API_WORKERS:-1}"
DFS_PUBLIC_URL="${DFS_PUBLIC_URL:-}"

# --- python, system user, the pinned release (hash-checked: bootstrap_lib.sh) --------------------
install_prerequisites
install_release dfs-api
install -d -m 0750 "${ROOT}${DATA_DIR}"
chown dfs:dfs "${ROOT}${DATA_DIR}"

# --- /etc/dfs/api.env (root only: systemd reads it before dropping privileges) ------------------
cluster_secret="$(ssm cluster-secret)"
api_secret="$(ssm api-secret)" # the API's alone: nodes never read it
admin_token="$(ssm admin-token)"
metrics_token="$(ssm metrics-token)"

env_text="$({
  env_line DFS_DATA_DIR "$DATA_DIR"
  env_line DFS_API_HOST 0.0.0.0
  env_line DFS_API_PORT "$DFS_API_PORT"
  env_line AWS_REGION "$region"
  env_line DFS_META_URL "dynamodb://?table_prefix=${DFS_TABLE_PREFIX}"
  env_line REPLICATION_FACTOR "$DFS_REPLICATION_FACTOR"
  env_line DFS_REPAIR_GRACE "$DFS_REPAIR_GRACE"
  env_line DFS_API_WORKERS "$DFS_API_WORKERS"
  env_line DFS_PUBLIC_URL "$DFS_PUBLIC_URL"
  env_line DFS_CLUSTER_SECRET "$cluster_secret"
  env_line DFS_API_SECRET "$api_secret"
  env_line DFS_ADMIN_TOKEN "$admin_token"
  env_line DFS_METRICS_TOKEN "$metrics_token"
  env_line DFS_LOG_FORMAT json
})" # a refused value stops here, before anything is written
printf '%s\n' "$env_text" | write_secret_file "$ENV_FILE"

# --- tables: Terraform created them; init-tables waits until they are ACTIVE with TTL on -------
(
  set -a
  # shellcheck source=/dev/null
  . "${ROOT}${ENV_FILE}"
  set +a
  runuser -u dfs -- "${ROOT}${VENV}/bin/dfs-api" init-tables --url "$DFS_META_URL"
)

# --- metrics to CloudWatch: the agent scrapes /metrics (the alarms' under-replicated chunks,
# metadata reachability, live nodes) as embedded metric format into the metrics log group ---
start_agent() {
  agent_scrape dfs-api "$DFS_API_PORT" "$metrics_token" '[{
    "source_labels": ["job"], "label_matcher": "^dfs-api$", "dimensions": [["job"]],
    "metric_selectors": ["^dfs_under_replicated_chunks$", "^dfs_metadata_up$", "^dfs_live_nodes$"]
  }]'
}
if [ -n "${DFS_METRICS_GROUP:-}" ]; then start_agent; fi

# --- unit -------------------------------------------------------------------------------------
install_unit "$UNIT"
log "dfs-api ${DFS_RELEASE_VERSION} started on port ${DFS_API_PORT}"
