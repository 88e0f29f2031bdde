#!/usr/bin/env bash
# Bootstrap the dfs S3 gateway (dfs-s3) on EC2 (run as root by cloud-init, from the instance's
# user data, on every instance the gateway's Auto Scaling group launches; safe to run again):
# install a pinned dfs release from the deployment's own artifacts bucket into /opt/dfs/venv
# (hash-checked, no package index), create the `dfs` system user, write /etc/dfs/s3.env from
# instance metadata (IMDSv2) and SSM Parameter Store, start the CloudWatch agent on the
# gateway's /metrics, then install and start the dfs-s3 unit.
# The release steps are bootstrap_lib.sh's, as for the API and the nodes; the gateway reads only the
# cluster secret, the API secret (access-key secrets are sealed under it) and the metrics
# token, runs no init-tables (the API's bootstrap does) and no background loops.
#
# Amazon Linux 2023 only, as bootstrap_api.sh.
#
# Inputs (environment):
#   DFS_RELEASE_BUCKET      S3 bucket holding releases (Terraform's artifacts bucket)
#   DFS_RELEASE_VERSION     X.Y.Z: the release under s3://BUCKET/releases/X.Y.Z/ (scripts/release.sh)
#   DFS_RELEASE_SHA256      sha256 of that release's requirements.lock, which pins every file
#   DFS_SSM_PREFIX          SSM path holding cluster-secret, api-secret and metrics-token
#   DFS_UNIT_FILE           the dfs-s3.service to install
#   DFS_TABLE_PREFIX        DynamoDB table name prefix (may be empty)
#   DFS_S3_PORT             listen port (default 9100)
#   DFS_S3_DOMAIN           optional: s3.<domain>, for virtual-host-style buckets
#   DFS_REPLICATION_FACTOR  copies of every chunk (default 2)
#   DFS_METRICS_GROUP       optional: CloudWatch log group of the metrics; set, the CloudWatch
#                           agent is installed and scrapes /metrics (namespace DFS_METRICS_NAMESPACE)
# For tests only:
#   DFS_ROOT                prefix of every path the script writes or reads (default: none, i.e. /)
#   DFS_IMDS_ENDPOINT       instance metadata service (default http://169.254.169.254)
set -euo pipefail

readonly ROOT="${DFS_ROOT:-}"
readonly IMDS="${DFS_IMDS_ENDPOINT:-http://169.254.169.254}"
readonly DATA_DIR=/var/lib/dfs # as the service sees it; the script writes under $ROOT
readonly VENV=/opt/dfs/venv
readonly ENV_FILE=/etc/dfs/s3.env
readonly UNIT=dfs-s3.service

log() { printf 'bootstrap_s3: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source-path=SCRIPTDIR source=bootstrap_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bootstrap_lib.sh"

boot_begin
DFS_TABLE_PREFIX="${DFS_TABLE_PREFIX:-}"
DFS_METRICS_NAMESPACE="${DFS_METRICS_NAMESPACE:-dfs}"
DFS_S3_PORT="${DFS_S3_PORT:-9100}"
DFS_S3_DOMAIN="${DFS_S3_DOMAIN:-}"
DFS_REPLICATION_FACTOR="${DFS_REPLICATION_FACTOR:-2}"

# --- python, system user, the pinned release (hash-checked: bootstrap_lib.sh) --------------------
install_prerequisites
install_release dfs-s3
install -d -m 0750 "${ROOT}${DATA_DIR}"
chown dfs:dfs "${ROOT}${DATA_DIR}"

# --- /etc/dfs/s3.env (root only: systemd reads it before dropping privileges) -------------------
cluster_secret="$(ssm cluster-secret)"
api_secret="$(ssm api-secret)" # opens the access keys' sealed secrets
metrics_token="$(ssm metrics-token)"

env_text="$({
  env_line DFS_DATA_DIR "$DATA_DIR"
  env_line DFS_S3_HOST 0.0.0.0
  env_line DFS_S3_PORT "$DFS_S3_PORT"
  env_line DFS_S3_DOMAIN "$DFS_S3_DOMAIN"
  env_line AWS_REGION "$region"
  env_line DFS_META_URL "dynamodb://?table_prefix=${DFS_TABLE_PREFIX}"
  env_line REPLICATION_FACTOR "$DFS_REPLICATION_FACTOR"
  env_line DFS_CLUSTER_SECRET "$cluster_secret"
  env_line DFS_API_SECRET "$api_secret"
  env_line DFS_METRICS_TOKEN "$metrics_token"
  env_line DFS_LOG_FORMAT json
})" # a refused value stops here, before anything is written
printf '%s\n' "$env_text" | write_secret_file "$ENV_FILE"

# --- metrics to CloudWatch: the agent scrapes the gateway's /metrics (requests by S3 action,
# refused signatures, requests in flight) as embedded metric format into the metrics log group;
# the gateway's alarms (5xx, not-ready hosts, p99 latency) read the load balancer's metrics ---
start_agent() {
  agent_scrape dfs-s3 "$DFS_S3_PORT" "$metrics_token" '[
    {"source_labels": ["job"], "label_matcher": "^dfs-s3$", "dimensions": [["job", "operation"]],
     "metric_selectors": ["^dfs_s3_requests_total$"]},
    {"source_labels": ["job"], "label_matcher": "^dfs-s3$", "dimensions": [["job", "reason"]],
     "metric_selectors": ["^dfs_s3_auth_failures_total$"]},
    {"source_labels": ["job"], "label_matcher": "^dfs-s3$", "dimensions": [["job"]],
     "metric_selectors": ["^dfs_s3_requests_in_flight$"]}
  ]'
}
if [ -n "${DFS_METRICS_GROUP:-}" ]; then start_agent; fi

# --- unit -------------------------------------------------------------------------------------
install_unit "$UNIT"
log "dfs-s3 ${DFS_RELEASE_VERSION} started on port ${DFS_S3_PORT}"
