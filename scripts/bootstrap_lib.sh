# shellcheck shell=bash
# What scripts/bootstrap_{api,node,s3}.sh share, sourced by each (functions only: sourcing
# runs nothing). It reaches the instance beside them: Terraform's user data template writes
# it to /opt/dfs/bootstrap/ next to the role's script (infra/terraform/templates).
#
# The caller defines ROOT, IMDS, DATA_DIR, VENV, log and die before calling these, and
# boot_begin before the rest (it sets `region`, which the AWS CLI calls take).

# Root, the inputs every role needs, then an IMDSv2 session and the region.
boot_begin() {
  [ "$(id -u)" -eq 0 ] || die "run as root"
  : "${DFS_RELEASE_BUCKET:?DFS_RELEASE_BUCKET is required}"
  : "${DFS_RELEASE_VERSION:?DFS_RELEASE_VERSION is required (a pinned release)}"
  : "${DFS_RELEASE_SHA256:?DFS_RELEASE_SHA256 is required (printed by scripts/release.sh)}"
  : "${DFS_SSM_PREFIX:?DFS_SSM_PREFIX is required}"
  : "${DFS_UNIT_FILE:?DFS_UNIT_FILE is required}"
  imds_token="$(curl -fsS --retry 5 --retry-connrefused -X PUT \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "${IMDS}/latest/api/token")"
  region="$(imds placement/region)"
}

# Instance metadata (IMDSv2 only: every call carries the session token).
imds() {
  curl -fsS --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: ${imds_token}" \
    "${IMDS}/latest/meta-data/$1"
}

# Python, the AWS CLI and the `dfs` system user.
install_prerequisites() {
  command -v dnf >/dev/null 2>&1 || die "Amazon Linux 2023 (dnf) is required"
  command -v python3.11 >/dev/null 2>&1 || dnf install -y -q python3.11 python3.11-pip
  command -v aws >/dev/null 2>&1 || dnf install -y -q awscli-2
  if ! id -u dfs >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
      --shell /sbin/nologin dfs
  fi
}

# The pinned release into $VENV: the lock's digest pins every wheel (dfs and each
# dependency); $1 is the command the release must have installed (dfs-api...).
install_release() {
  [[ "$DFS_RELEASE_VERSION" =~ ^[0-9]+(\.[0-9]+)*([a-z0-9.+-]*)$ ]] ||
    die "DFS_RELEASE_VERSION must be a release version X.Y.Z: $DFS_RELEASE_VERSION"
  [[ "$DFS_RELEASE_SHA256" =~ ^[0-9a-f]{64}$ ]] ||
    die "DFS_RELEASE_SHA256 must be 64 hex digits"
  local release_dir="${ROOT}/opt/dfs/releases/${DFS_RELEASE_VERSION}"
  install -d -m 0755 "${ROOT}/opt/dfs" "$release_dir"
  aws s3 sync --region "$region" --only-show-errors --delete \
    "s3://${DFS_RELEASE_BUCKET}/releases/${DFS_RELEASE_VERSION}/" "$release_dir/"
  local lock="${release_dir}/requirements.lock" have
  [ -f "$lock" ] || die "release ${DFS_RELEASE_VERSION} has no requirements.lock"
  have="$(sha256sum "$lock" | cut -d' ' -f1)"
  [ "$have" = "$DFS_RELEASE_SHA256" ] ||
    die "requirements.lock of ${DFS_RELEASE_VERSION} has sha256 ${have}, not the pinned ${DFS_RELEASE_SHA256}"
  grep -qx "dfs==${DFS_RELEASE_VERSION} --hash=sha256:[0-9a-f]\{64\}" "$lock" ||
    die "requirements.lock does not pin dfs==${DFS_RELEASE_VERSION} by hash"
  [ -x "${ROOT}${VENV}/bin/python" ] || python3.11 -m venv "${ROOT}${VENV}"
  # only the release's own files, every one hash-checked; no index, no pip configuration
  env -i PATH=/usr/bin:/bin PIP_CONFIG_FILE=/dev/null "${ROOT}${VENV}/bin/python" -m pip install \
    --quiet --disable-pip-version-check --no-cache-dir --no-index --find-links "$release_dir" \
    --require-hashes --only-binary=:all: -r "$lock"
  [ -x "${ROOT}${VENV}/bin/$1" ] || die "the release did not install $1"
}

# A SecureString of this deployment's SSM prefix.
ssm() {
  aws ssm get-parameter --region "$region" --with-decryption --name "${DFS_SSM_PREFIX}/$1" \
    --query Parameter.Value --output text
}

# KEY VALUE: quoted so that systemd and a shell read the same value.
env_line() {
  case "$2" in *[\"\$\`\\]* | *$'\n'*) die "unsafe character in the value of $1" ;; esac
  printf '%s="%s"\n' "$1" "$2"
}

# Standard input into the root-only file $1 (under $ROOT), whole or not at all: systemd
# reads env files before dropping privileges.
write_secret_file() {
  install -d -m 0755 "$(dirname "${ROOT}$1")"
  (umask 077 && cat >"${ROOT}$1.tmp")
  chmod 0600 "${ROOT}$1.tmp"
  mv "${ROOT}$1.tmp" "${ROOT}$1"
}

# Install $DFS_UNIT_FILE as unit $1, enable it and (re)start it.
install_unit() {
  install -d -m 0755 "${ROOT}/etc/systemd/system"
  install -m 0644 "$DFS_UNIT_FILE" "${ROOT}/etc/systemd/system/$1"
  systemctl daemon-reload
  systemctl enable "$1"
  systemctl restart "$1"
}

# The CloudWatch agent installed (sets agent_etc and agent_ctl for agent_configure).
agent_install() {
  agent_etc="/opt/aws/amazon-cloudwatch-agent/etc"
  agent_ctl="/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
  [ -x "${ROOT}${agent_ctl}" ] || dnf install -y -q amazon-cloudwatch-agent
  install -d -m 0755 "${ROOT}${agent_etc}"
}

# Standard input (the agent's JSON configuration) made its configuration; the agent (re)started.
agent_configure() {
  cat >"${ROOT}${agent_etc}/dfs.json"
  "${ROOT}${agent_ctl}" -a fetch-config -m ec2 -s -c "file:${agent_etc}/dfs.json"
}

# The agent scraping a service's /metrics (job $1 at 127.0.0.1:$2 with the bearer token $3)
# into the log group $DFS_METRICS_GROUP as embedded metric format; $4 is the EMF
# metric_declaration list (JSON): which series become CloudWatch metrics, by which labels.
agent_scrape() {
  agent_install
  (umask 077 && printf '%s' "$3" >"${ROOT}/etc/dfs/metrics-token")
  cat >"${ROOT}${agent_etc}/dfs-prometheus.yaml" <<EOF
global:
  scrape_interval: 60s
  scrape_timeout: 10s
scrape_configs:
  - job_name: $1
    bearer_token_file: /etc/dfs/metrics-token
    static_configs:
      - targets: ["127.0.0.1:$2"]
EOF
  agent_configure <<EOF
{
  "agent": {"run_as_user": "root", "omit_hostname": true},
  "logs": {"metrics_collected": {"prometheus": {
    "log_group_name": "${DFS_METRICS_GROUP}",
    "prometheus_config_path": "${agent_etc}/dfs-prometheus.yaml",
    "emf_processor": {"metric_namespace": "${DFS_METRICS_NAMESPACE}", "metric_declaration": $4}
  }}}
}
EOF
}
