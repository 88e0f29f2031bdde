#!/usr/bin/env bash
# Bootstrap a dfs storage node on EC2 (run as root by cloud-init, from the instance's user data;
# safe to run again): install a pinned dfs release from the deployment's own artifacts bucket
# into /opt/dfs/venv (hash-checked, no package index), create the `dfs` system user, format
# (first boot only) and mount the node's EBS data volume at /var/lib/dfs, write
# /etc/dfs/node.env from instance metadata (IMDSv2) and SSM Parameter Store, then install and
# start the dfs-node systemd unit.
#
# Amazon Linux 2023 only (it ships python3.11 in dnf and the AWS CLI, and its repositories are
# served over HTTPS, the only egress the security groups allow). The Ubuntu branch was dropped:
# Ubuntu's mirrors are plain HTTP, it has no python3.11 in current releases and no AWS CLI.
#
# Inputs (environment):
#   DFS_RELEASE_BUCKET   S3 bucket holding releases (Terraform's artifacts bucket)
#   DFS_RELEASE_VERSION  X.Y.Z: the release under s3://BUCKET/releases/X.Y.Z/ (scripts/release.sh)
#   DFS_RELEASE_SHA256   sha256 of that release's requirements.lock, which pins every file
#   DFS_SSM_PREFIX       SSM path holding cluster-secret and metrics-token (e.g. /dfs)
#   DFS_DATA_VOLUME_ID   the EBS volume to use as the data directory (vol-...)
#   DFS_UNIT_FILE        the dfs-node.service to install
#   DFS_TABLE_PREFIX     DynamoDB table name prefix (may be empty)
#   DFS_NODE_PORT        listen port (default 9000)
#   DFS_METRICS_GROUP       optional: CloudWatch log group of the metrics; set, the CloudWatch
#                           agent is installed and started (namespace DFS_METRICS_NAMESPACE)
# For tests only (tests/deploy/test_bootstrap_run.py):
#   DFS_ROOT             prefix of every path the script writes or reads (default: none, i.e. /)
#   DFS_IMDS_ENDPOINT    instance metadata service (default http://169.254.169.254)
set -euo pipefail

readonly ROOT="${DFS_ROOT:-}"
readonly IMDS="${DFS_IMDS_ENDPOINT:-http://169.254.169.254}"
readonly DATA_DIR=/var/lib/dfs # as the service sees it; the script writes under $ROOT
readonly VENV=/opt/dfs/venv
readonly ENV_FILE=/etc/dfs/node.env
readonly UNIT=dfs-node.service

log() { printf 'bootstrap_node: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source-path=SCRIPTDIR source=bootstrap_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bootstrap_lib.sh"

boot_begin
: "${DFS_DATA_VOLUME_ID:?DFS_DATA_VOLUME_ID is required}"
DFS_TABLE_PREFIX="${DFS_TABLE_PREFIX:-}"
DFS_METRICS_NAMESPACE="${DFS_METRICS_NAMESPACE:-dfs}"
DFS_NODE_PORT="${DFS_NODE_PORT:-9000}"

# --- instance metadata (IMDSv2 only: bootstrap_lib.sh) ----------------------------------------
zone="$(imds placement/availability-zone)"
private_ip="$(imds local-ipv4)"

# --- python, system user, the pinned release (hash-checked: bootstrap_lib.sh) --------------------
install_prerequisites
install_release dfs-node

# --- data volume: wait for the attachment, format once, mount by UUID ---------------------------
find_volume() {
  # Nitro instances name EBS volumes by serial (the volume id without its dash).
  local serial="${DFS_DATA_VOLUME_ID/-/}"
  local dev
  for dev in "${ROOT}/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial}" \
    "${ROOT}/dev/sdf" "${ROOT}/dev/xvdf"; do
    if [ -e "$dev" ]; then
      readlink -f "$dev"
      return 0
    fi
  done
  return 1
}
device=""
for _ in $(seq 1 120); do # the attachment is made after the instance starts: wait up to 10 min
  if device="$(find_volume)"; then break; fi
  sleep 5
done
[ -n "$device" ] || die "volume ${DFS_DATA_VOLUME_ID} never appeared"
if ! blkid -o value -s TYPE "$device" >/dev/null 2>&1; then
  log "formatting ${device} (${DFS_DATA_VOLUME_ID}) as xfs"
  mkfs.xfs -q -L dfs-data "$device"
fi
uuid="$(blkid -o value -s UUID "$device")"
install -d -m 0750 "${ROOT}${DATA_DIR}"
if ! grep -q "UUID=${uuid} " "${ROOT}/etc/fstab"; then
  printf 'UUID=%s %s xfs defaults,noatime,nofail 0 2\n' "$uuid" "$DATA_DIR" >>"${ROOT}/etc/fstab"
fi
mountpoint -q "${ROOT}${DATA_DIR}" || mount "${ROOT}${DATA_DIR}"
chown dfs:dfs "${ROOT}${DATA_DIR}"
chmod 0750 "${ROOT}${DATA_DIR}"

# --- /etc/dfs/node.env (root only: systemd reads it before dropping privileges) -----------------
cluster_secret="$(ssm cluster-secret)"
metrics_token="$(ssm metrics-token)"

env_text="$({
  env_line DFS_DATA_DIR "$DATA_DIR"
  env_line DFS_NODE_HOST 0.0.0.0
  env_line NODE_PORT "$DFS_NODE_PORT"
  env_line DFS_NODE_ADVERTISE_HOST "$private_ip"
  env_line DFS_NODE_ZONE "$zone"
  env_line AWS_REGION "$region"
  env_line DFS_META_URL "dynamodb://?table_prefix=${DFS_TABLE_PREFIX}"
  env_line DFS_CLUSTER_SECRET "$cluster_secret"
  env_line DFS_METRICS_TOKEN "$metrics_token"
  env_line DFS_LOG_FORMAT json
})" # a refused value stops here, before anything is written
printf '%s\n' "$env_text" | write_secret_file "$ENV_FILE"

# --- metrics to CloudWatch: the agent reports the data volume's used percent (an alarm) ---------
start_agent() {
  agent_install
  agent_configure <<EOF
{
  "agent": {"run_as_user": "root", "omit_hostname": true},
  "metrics": {
    "namespace": "${DFS_METRICS_NAMESPACE}",
    "append_dimensions": {"InstanceId": "\${aws:InstanceId}"},
    "metrics_collected": {"disk": {
      "resources": ["${DATA_DIR}"], "measurement": ["used_percent"], "drop_device": true
    }}
  }
}
EOF
}
if [ -n "${DFS_METRICS_GROUP:-}" ]; then start_agent; fi

# --- unit -------------------------------------------------------------------------------------
install_unit "$UNIT"
log "dfs-node ${DFS_RELEASE_VERSION} started (zone ${zone}, ${private_ip}:${DFS_NODE_PORT})"
