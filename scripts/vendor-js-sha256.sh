#!/usr/bin/env bash
# Re-fetch the web console's vendored incremental SHA-256 (js-sha256, MIT) from the npm
# registry and check it byte for byte against the committed copy (or, with --update, replace
# the copy). The tarball is checked against its published integrity hash (sha512, pinned
# below, as `npm view js-sha256@VERSION dist.integrity` prints it) before anything is read
# from it, so the result is reproducible: the same bytes or a failure. Needs npm and python3;
# never run in CI (no network installs there), the committed files are what ships.
#
#   scripts/vendor-js-sha256.sh            # check the committed files
#   scripts/vendor-js-sha256.sh --update   # write them (then commit, and bump VERSION/INTEGRITY
#                                          # here first when moving to another release)
set -euo pipefail

VERSION=1.0.0
INTEGRITY="sha512-Bqxf6ENUzYIMzuELCmRNrJOVbjKH1oMgbfYJBKVr/W1Xf9fazpahqCbb24v1pR7XV1isuqhM+w9KWpK7zCyUQw=="
FILES=(build/sha256.min.mjs LICENSE.txt)

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/dfs/console/static/vendor/js-sha256"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "js-sha256@$VERSION" >/dev/null)
tarball="$work/js-sha256-$VERSION.tgz"
got="sha512-$(python3 -c 'import base64, hashlib, sys
print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
if [[ "$got" != "$INTEGRITY" ]]; then
    echo "js-sha256 $VERSION: integrity $got, expected $INTEGRITY" >&2
    exit 1
fi
tar -xzf "$tarball" -C "$work"

status=0
for f in "${FILES[@]}"; do
    name="$(basename "$f")"
    if [[ "${1:-}" == "--update" ]]; then
        install -m 0644 "$work/package/$f" "$dest/$name"
        echo "wrote $dest/$name"
    elif cmp -s "$work/package/$f" "$dest/$name"; then
        echo "ok $name (js-sha256 $VERSION)"
    else
        echo "DIFFERS: $dest/$name is not js-sha256 $VERSION's $f" >&2
        status=1
    fi
done
exit "$status"
