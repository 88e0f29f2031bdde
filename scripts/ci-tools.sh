#!/usr/bin/env bash
# Install the tools the deployment checks, the browser tests and the S3 client tests need,
# idempotently (tests/deploy, tests/browser and tests/e2e/test_s3_*.py use them):
#   the commands shellcheck, systemd-analyze, chromium, chromedriver, rclone and restic from
#   Debian's apt (skipped when all are already present),
#   checkov into its own virtualenv .venv-checkov (pinned in requirements/deploy-checks.txt;
#   it pins boto3 and an hcl2 fork that clash with the project's own environment),
#   the AWS CLI into its own virtualenv .venv-awscli (pinned in requirements/awscli.txt; it
#   pins its own botocore).
# Usage: bash scripts/ci-tools.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    sudo "$@"
  fi
}

if ! command -v shellcheck >/dev/null 2>&1 || ! command -v systemd-analyze >/dev/null 2>&1 ||
  ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 ||
  ! command -v rclone >/dev/null 2>&1 || ! command -v restic >/dev/null 2>&1; then
  echo "== apt: shellcheck systemd chromium chromium-driver rclone restic"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends shellcheck systemd >/dev/null
  # the web console's browser tests (tests/browser): Playwright drives this chromium, so no
  # browser is downloaded; chromium-driver is there for WebDriver clients (Selenium)
  as_root apt-get install -y -qq chromium chromium-driver >/dev/null
  # real S3 clients for the gateway's tests (tests/e2e/test_s3_clients.py)
  as_root apt-get install -y -qq --no-install-recommends rclone restic >/dev/null
fi

# tool_venv NAME COMMAND REQUIREMENTS: a virtualenv .venv-NAME holding COMMAND, installed
# from requirements/REQUIREMENTS and reinstalled only when that file changes
tool_venv() {
  local venv="$repo/.venv-$1" reqs="$repo/requirements/$3"
  local stamp="$venv/.installed"
  if [ ! -x "$venv/bin/$2" ] || ! cmp -s "$reqs" "$stamp"; then
    echo "== pip: $2 (into .venv-$1)"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
    cp "$reqs" "$stamp"
  fi
}
tool_venv checkov checkov deploy-checks.txt
tool_venv awscli aws awscli.txt
