#!/usr/bin/env bash
# Set everything up, start a local cluster (API + 3 nodes, SQLite metadata under
# dfs-data/demo), upload test-files/, download every file back, verify it byte for byte,
# show the dedup statistics, and stop the cluster. Pass --keep to leave it running.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh
keep=0
[ "${1:-}" = "--keep" ] && keep=1
base=dfs-data/demo
api=http://127.0.0.1:8080
stop_cluster() { python -m dfs.localcluster stop --dir "$base" >/dev/null; }
python -m dfs.localcluster stop --dir "$base" >/dev/null 2>&1 || true
rm -rf "$base"  # a fresh cluster every run, so the statistics below are this run's
python -m dfs.localcluster start --dir "$base"
[ "$keep" = 1 ] || trap stop_cluster EXIT
python -m dfs.localcluster status --dir "$base"

# the cluster's admin token creates a tenant and a token for it; the demo runs as that tenant
admin_token="$(sed -n 's/^DFS_ADMIN_TOKEN=//p' "$base/cluster.env")"
export DFS_TOKEN="$admin_token"
dfs-client admin create-tenant "$api" demo >/dev/null
DFS_TOKEN="$(dfs-client admin create-token --label demo "$api" demo)"
echo "tenant 'demo' created; its token: $DFS_TOKEN"

out="$(mktemp -d)"
echo
echo "== upload test-files/"
for f in test-files/*; do
  [ "$(basename "$f")" = README.md ] && continue
  id="$(dfs-client upload "$api" "$f")"
  echo "$id $(basename "$f")"
  echo "$id $f" >> "$out/ids"
done
echo
echo "== download and verify"
while read -r id f; do
  dfs-client download "$api" "$id" "$out/$(basename "$f")" >/dev/null
  cmp "$f" "$out/$(basename "$f")"
  echo "ok  $(sha256sum "$f" | cut -c1-16)…  $f"
done < "$out/ids"
echo
echo "== upload them all again: dedup sends nothing new"
for f in test-files/*; do
  [ "$(basename "$f")" = README.md ] && continue
  dfs-client upload --json "$api" "$f" | python -c \
    'import json,sys; r=json.load(sys.stdin); print("%s: %d new chunks, %d bytes sent" % (r["name"], r["new_chunks"], r["bytes_sent"]))'
done
echo
echo "== stats"
DFS_TOKEN="$admin_token" dfs-client stats "$api"
rm -rf "$out"
if [ "$keep" = 1 ]; then
  echo; echo "cluster left running: bash scripts/cluster.sh status --dir $base | stop --dir $base"
fi
