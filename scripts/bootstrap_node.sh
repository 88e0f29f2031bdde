#!/usr/bin/env bash
# Bootstrap a dfs storage node on EC2 (run as root by cloud-init, from the instance's user data;
# safe to run again): install a pinned dfs release into /opt/dfs/venv, create the `dfs` system
# user, format (first boot only) and mount the node's EBS data volume at /var/lib/dfs, write
# /etc/dfs/node.env from instance metadata (IMDSv2) and SSM Parameter Store, then install and
# start the dfs-node systemd unit.
#
# Inputs (environment):
#   DFS_PACKAGE         pinned pip requirement: "dfs==1.2.3" or "https://.../dfs-1.2.3-py3-none-any.whl#sha256=..."
#   DFS_SSM_PREFIX      SSM path holding cluster-secret and metrics-token (e.g. /dfs)
#   DFS_DATA_VOLUME_ID  the EBS volume to use as the data directory (vol-...)
#   DFS_UNIT_FILE       the dfs-node.service to install
#   DFS_TABLE_PREFIX    DynamoDB table name prefix (may be empty)
#   DFS_NODE_PORT       listen port (default 9000)
#   DFS_PIP_INDEX_URL   optional package index
set -euo pipefail

readonly DATA_DIR=/var/lib/dfs
readonly VENV=/opt/dfs/venv
readonly ENV_FILE=/etc/dfs/node.env
readonly UNIT=dfs-node.service

log() { printf 'bootstrap_node: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"
: "${DFS_PACKAGE:?DFS_PACKAGE is required (a pinned release)}"
: "${DFS_SSM_PREFIX:?DFS_SSM_PREFIX is required}"
: "${DFS_DATA_VOLUME_ID:?DFS_DATA_VOLUME_ID is required}"
: "${DFS_UNIT_FILE:?DFS_UNIT_FILE is required}"
DFS_TABLE_PREFIX="${DFS_TABLE_PREFIX:-}"
DFS_NODE_PORT="${DFS_NODE_PORT:-9000}"

# --- instance metadata (IMDSv2 only) --------------------------------------------------------
imds_token="$(curl -fsS --retry 5 --retry-connrefused -X PUT \
  -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)"
imds() {
  curl -fsS --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: ${imds_token}" \
    "http://169.254.169.254/latest/meta-data/$1"
}
region="$(imds placement/region)"
zone="$(imds placement/availability-zone)"
private_ip="$(imds local-ipv4)"

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

install -d -m 0755 /opt/dfs
[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV"
pip_args=(--quiet --disable-pip-version-check --no-cache-dir)
[ -n "${DFS_PIP_INDEX_URL:-}" ] && pip_args+=(--index-url "$DFS_PIP_INDEX_URL")
"$VENV/bin/python" -m pip install "${pip_args[@]}" "$DFS_PACKAGE"
[ -x "$VENV/bin/dfs-node" ] || die "the release did not install dfs-node"

# --- data volume: wait for the attachment, format once, mount by UUID ---------------------------
find_volume() {
  # Nitro instances name EBS volumes by serial (the volume id without its dash).
  local serial="${DFS_DATA_VOLUME_ID/-/}"
  local dev
  for dev in "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial}" /dev/sdf /dev/xvdf; do
    if [ -b "$dev" ]; then
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
install -d -m 0750 "$DATA_DIR"
if ! grep -q "UUID=${uuid} " /etc/fstab; then
  printf 'UUID=%s %s xfs defaults,noatime,nofail 0 2\n' "$uuid" "$DATA_DIR" >>/etc/fstab
fi
mountpoint -q "$DATA_DIR" || mount "$DATA_DIR"
chown dfs:dfs "$DATA_DIR"
chmod 0750 "$DATA_DIR"

# --- /etc/dfs/node.env (root only: systemd reads it before dropping privileges) -----------------
ssm() {
  aws ssm get-parameter --region "$region" --with-decryption --name "${DFS_SSM_PREFIX}/$1" \
    --query Parameter.Value --output text
}
cluster_secret="$(ssm cluster-secret)"
metrics_token="$(ssm metrics-token)"

env_line() { # KEY VALUE: quoted so that systemd and a shell read the same value
  case "$2" in *[\"\$\`\\]* | *$'\n'*) die "unsafe character in the value of $1" ;; esac
  printf '%s="%s"\n' "$1" "$2"
}
install -d -m 0755 /etc/dfs
umask 077
{
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
} >"${ENV_FILE}.tmp"
chmod 0600 "${ENV_FILE}.tmp"
mv "${ENV_FILE}.tmp" "$ENV_FILE"
umask 022

# --- unit -------------------------------------------------------------------------------------
install -m 0644 "$DFS_UNIT_FILE" "/etc/systemd/system/${UNIT}"
systemctl daemon-reload
systemctl enable "$UNIT"
systemctl restart "$UNIT"
log "dfs-node started (zone ${zone}, ${private_ip}:${DFS_NODE_PORT})"
