#!/usr/bin/env bash
# Bootstrap the dfs API coordinator on EC2 (run as root by cloud-init, from the instance's user
# data; safe to run again): install a pinned dfs release into /opt/dfs/venv, create the `dfs`
# system user, write /etc/dfs/api.env from instance metadata (IMDSv2) and SSM Parameter Store,
# check the DynamoDB tables with `dfs-api init-tables`, then install and start the dfs-api unit.
#
# Inputs (environment):
#   DFS_PACKAGE             pinned pip requirement: "dfs==1.2.3" or "https://.../dfs-1.2.3-py3-none-any.whl#sha256=..."
#   DFS_SSM_PREFIX          SSM path holding cluster-secret, admin-token and metrics-token (e.g. /dfs)
#   DFS_UNIT_FILE           the dfs-api.service to install
#   DFS_TABLE_PREFIX        DynamoDB table name prefix (may be empty)
#   DFS_API_PORT            listen port (default 8080)
#   DFS_REPLICATION_FACTOR  copies of every chunk (default 2)
#   DFS_PIP_INDEX_URL       optional package index
set -euo pipefail

readonly DATA_DIR=/var/lib/dfs
readonly VENV=/opt/dfs/venv
readonly ENV_FILE=/etc/dfs/api.env
readonly UNIT=dfs-api.service

log() { printf 'bootstrap_api: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"
: "${DFS_PACKAGE:?DFS_PACKAGE is required (a pinned release)}"
: "${DFS_SSM_PREFIX:?DFS_SSM_PREFIX is required}"
: "${DFS_UNIT_FILE:?DFS_UNIT_FILE is required}"
DFS_TABLE_PREFIX="${DFS_TABLE_PREFIX:-}"
DFS_API_PORT="${DFS_API_PORT:-8080}"
DFS_REPLICATION_FACTOR="${DFS_REPLICATION_FACTOR:-2}"

# --- instance metadata (IMDSv2 only) --------------------------------------------------------
imds_token="$(curl -fsS --retry 5 --retry-connrefused -X PUT \
  -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)"
imds() {
  curl -fsS --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: ${imds_token}" \
    "http://169.254.169.254/latest/meta-data/$1"
}
region="$(imds placement/region)"

# --- pinned release, system user ---------------------------------------------------------------
check_pinned() {
  case "$1" in
    git+* | *@git* | *.git | *.git@*) die "DFS_PACKAGE must be a release, not a source checkout: $1" ;;
    *==*) ;;
    https://*.whl\#sha256=*) ;;
    *) die "DFS_PACKAGE must pin a version (dfs==X.Y.Z) or a wheel URL with #sha256=: $1" ;;
  esac
}
check_pinned "$DFS_PACKAGE"

install_python() {
  if command -v python3.11 >/dev/null 2>&1; then return; fi
  if command -v dnf >/dev/null 2>&1; then
    dnf install -y -q python3.11 python3.11-pip
  elif command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3.11 python3.11-venv
  else
    die "no python3.11 and no dnf/apt-get to install it"
  fi
}
install_python

if ! id -u dfs >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
    --shell /sbin/nologin dfs
fi
install -d -m 0750 -o dfs -g dfs "$DATA_DIR"

install -d -m 0755 /opt/dfs
[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV"
pip_args=(--quiet --disable-pip-version-check --no-cache-dir)
[ -n "${DFS_PIP_INDEX_URL:-}" ] && pip_args+=(--index-url "$DFS_PIP_INDEX_URL")
"$VENV/bin/python" -m pip install "${pip_args[@]}" "$DFS_PACKAGE"
[ -x "$VENV/bin/dfs-api" ] || die "the release did not install dfs-api"

# --- /etc/dfs/api.env (root only: systemd reads it before dropping privileges) ------------------
ssm() {
  aws ssm get-parameter --region "$region" --with-decryption --name "${DFS_SSM_PREFIX}/$1" \
    --query Parameter.Value --output text
}
cluster_secret="$(ssm cluster-secret)"
api_secret="$(ssm api-secret)" # the API's alone: nodes never read it
admin_token="$(ssm admin-token)"
metrics_token="$(ssm metrics-token)"

env_line() { # KEY VALUE: quoted so that systemd and a shell read the same value
  case "$2" in *[\"\$\`\\]* | *$'\n'*) die "unsafe character in the value of $1" ;; esac
  printf '%s="%s"\n' "$1" "$2"
}
install -d -m 0755 /etc/dfs
umask 077
{
  env_line DFS_DATA_DIR "$DATA_DIR"
  env_line DFS_API_HOST 0.0.0.0
  env_line DFS_API_PORT "$DFS_API_PORT"
  env_line AWS_REGION "$region"
  env_line DFS_META_URL "dynamodb://?table_prefix=${DFS_TABLE_PREFIX}"
  env_line REPLICATION_FACTOR "$DFS_REPLICATION_FACTOR"
  env_line DFS_CLUSTER_SECRET "$cluster_secret"
  env_line DFS_API_SECRET "$api_secret"
  env_line DFS_ADMIN_TOKEN "$admin_token"
  env_line DFS_METRICS_TOKEN "$metrics_token"
  env_line DFS_LOG_FORMAT json
} >"${ENV_FILE}.tmp"
chmod 0600 "${ENV_FILE}.tmp"
mv "${ENV_FILE}.tmp" "$ENV_FILE"
umask 022

# --- tables: Terraform created them; init-tables waits until they are ACTIVE with TTL on -------
(
  set -a
  # shellcheck source=/dev/null
  . "$ENV_FILE"
  set +a
  runuser -u dfs -- "$VENV/bin/dfs-api" init-tables --url "$DFS_META_URL"
)

# --- unit -------------------------------------------------------------------------------------
install -m 0644 "$DFS_UNIT_FILE" "/etc/systemd/system/${UNIT}"
systemctl daemon-reload
systemctl enable "$UNIT"
systemctl restart "$UNIT"
log "dfs-api started on port ${DFS_API_PORT}"
