#!/usr/bin/env bash
# Build a dfs release that EC2 instances install by hash only, from a bucket you control:
#   OUT/dfs-X.Y.Z-py3-none-any.whl      the wheel of this tree (X.Y.Z is dfs.__version__)
#   OUT/<every runtime dependency>.whl   the wheels requirements/runtime.lock pins, for the
#                                        instances' platform (CPython 3.11, manylinux x86_64)
#   OUT/requirements.lock                requirements/runtime.lock (every dependency pinned
#                                        and hashed) plus "dfs==X.Y.Z --hash=sha256:<wheel>"
# and print the two values Terraform needs (release_version, release_sha256: the lock's digest,
# which pins every file) and the command that uploads OUT to the artifacts bucket.
# scripts/bootstrap_*.sh install exactly that: pip --no-index --require-hashes -r the lock.
#
# The lock is compiled from pyproject.toml by uv (pinned in requirements/release-tools.txt,
# installed into .venv-release), and kept in git so that a release is reproducible:
#   bash scripts/release.sh [OUT]          lock must be current; build everything (default OUT:
#                                          dist/release/X.Y.Z)
#   bash scripts/release.sh --lock         recompile requirements/runtime.lock (after changing
#                                          pyproject.toml's dependencies; existing pins are
#                                          kept where they still fit), then commit it
#   bash scripts/release.sh --check [OUT]  CI: the lock is current and fully hashed, the wheel
#                                          builds and OUT/requirements.lock pins it (no
#                                          dependency wheels are downloaded)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

mode=build
case "${1:-}" in
  --lock | --check) mode="${1#--}"; shift ;;
  -*) echo "usage: bash scripts/release.sh [--lock | --check] [OUT]" >&2; exit 2 ;;
esac

readonly LOCK=requirements/runtime.lock
readonly PY_VERSION=3.11
readonly UV_PLATFORM=x86_64-manylinux_2_28
readonly PIP_PLATFORM=manylinux_2_28_x86_64

log() { printf 'release: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- pinned tools ---------------------------------------------------------------------------
tools_reqs="$repo/requirements/release-tools.txt"
venv="$repo/.venv-release"
if [ ! -x "$venv/bin/uv" ] || ! cmp -s "$tools_reqs" "$venv/.installed"; then
  log "installing the release tools into .venv-release"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$tools_reqs"
  cp "$tools_reqs" "$venv/.installed"
fi
uv="$venv/bin/uv"

compile_lock() { # OUTFILE: the runtime dependencies of pyproject.toml, pinned and hashed
  "$uv" pip compile --quiet pyproject.toml --generate-hashes --no-header \
    --python-version "$PY_VERSION" --python-platform "$UV_PLATFORM" -o "$1"
}

if [ "$mode" = lock ]; then
  compile_lock "$LOCK"
  log "wrote $LOCK: commit it"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# uv keeps the pins of an existing output file where they still satisfy pyproject.toml, so
# a new upstream release of a dependency does not make the committed lock stale
cp "$LOCK" "$tmp/runtime.lock"
compile_lock "$tmp/runtime.lock"
cmp -s "$tmp/runtime.lock" "$LOCK" ||
  die "$LOCK is not what pyproject.toml resolves to now: run bash scripts/release.sh --lock"
# every requirement is pinned (==) and hashed
python3 - "$LOCK" <<'EOF'
import re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
reqs = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
bad = [l.split()[0] for l in reqs if not re.match(r"^[A-Za-z0-9._-]+==\S+ .*--hash=sha256:[0-9a-f]{64}", l)]
if bad or not reqs:
    sys.exit(f"release: unpinned or unhashed in the lock: {bad or 'nothing pinned'}")
EOF

version="$(python3 -c 'import re,sys; print(re.search(r"__version__ = \"([^\"]+)\"", open("dfs/__init__.py").read()).group(1))')"
out="${1:-dist/release/$version}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
rm -f "$out"/dfs-*.whl "$out/requirements.lock"

log "building dfs $version"
# the same tree builds the same bytes (zip timestamps from the last commit)
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || echo 315532800)" \
  "$uv" build --quiet --wheel --out-dir "$tmp/wheel" .
wheel="$(find "$tmp/wheel" -name "dfs-${version}-py3-none-any.whl" -print -quit)"
[ -n "$wheel" ] || die "uv build made no dfs-${version}-py3-none-any.whl"
cp "$wheel" "$out/"
digest="$(sha256sum "$wheel" | cut -d' ' -f1)"

if [ "$mode" = build ]; then
  log "downloading the locked dependencies for CPython $PY_VERSION on $PIP_PLATFORM"
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --require-hashes --only-binary=:all: --implementation cp --python-version "$PY_VERSION" \
    --platform "$PIP_PLATFORM" -d "$out" -r "$LOCK"
fi

{
  cat "$LOCK"
  printf 'dfs==%s --hash=sha256:%s\n' "$version" "$digest"
} >"$out/requirements.lock"
lock_digest="$(sha256sum "$out/requirements.lock" | cut -d' ' -f1)"

cat <<EOF
release_version = "$version"
release_sha256  = "$lock_digest"
# upload (bucket: terraform output -raw artifacts_bucket), then set the two values above:
#   aws s3 sync --delete $out/ s3://BUCKET/releases/$version/
EOF
