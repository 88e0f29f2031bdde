#!/usr/bin/env bash
# Install the tools the deployment checks and the browser tests need, idempotently
# (tests/deploy and tests/browser use them):
#   the commands shellcheck, systemd-analyze, chromium and chromedriver from Debian's apt
#   (skipped when all are already present),
#   checkov into its own virtualenv .venv-checkov (pinned in requirements/deploy-checks.txt;
#   it pins boto3 and an hcl2 fork that clash with the project's own environment).
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
  ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "== apt: shellcheck systemd chromium chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends shellcheck systemd >/dev/null
  # the web console's browser tests (tests/browser): Playwright drives this chromium, so no
  # browser is downloaded; chromium-driver is there for WebDriver clients (Selenium)
  as_root apt-get install -y -qq chromium chromium-driver >/dev/null
fi

reqs="$repo/requirements/deploy-checks.txt"
venv="$repo/.venv-checkov"
stamp="$venv/.installed"
if [ ! -x "$venv/bin/checkov" ] || ! cmp -s "$reqs" "$stamp"; then
  echo "== pip: checkov (into .venv-checkov)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
  cp "$reqs" "$stamp"
fi
