#!/usr/bin/env bash
# Set everything up, start a local cluster (API + 3 nodes + the S3 gateway, SQLite metadata under
# dfs-data/demo), upload test-files/ as the user tenant "demo", download every file back,
# verify it byte for byte, store and read them again through the S3 gateway (boto3, and the
# AWS CLI when installed), show the dedup statistics, and stop the cluster.
# Usage: bash scripts/demo.sh [--keep]   (--keep leaves the cluster running)
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
case "${1:-}" in
  "") ;;
  --keep) keep=1 ;;
  *) echo "usage: bash scripts/demo.sh [--keep]" >&2; exit 2 ;;
esac
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
base=dfs-data/demo
stop_cluster() { python -m dfs.localcluster stop --dir "$base" 2>/dev/null; }
python -m dfs.localcluster stop --dir "$base" >/dev/null 2>&1 || true
rm -rf "$base"  # a fresh cluster every run, so the statistics below are this run's
# start prints `export DFS_API_URL=... DFS_TOKEN=...`: the user tenant "demo" and its token
exports="$(python -m dfs.localcluster start --dir "$base")"  # fails the script if start fails
eval "$exports"
[ "$keep" = 1 ] || trap stop_cluster EXIT
python -m dfs.localcluster status --dir "$base"
admin_token="$(sed -n 's/^DFS_ADMIN_TOKEN=//p' "$base/cluster.env")"
echo "tenant 'demo' at $DFS_API_URL; its token: $DFS_TOKEN"

out="$(mktemp -d)"
echo
echo "== upload test-files/"
for f in test-files/*; do
  [ "$(basename "$f")" = README.md ] && continue
  id="$(dfs-client upload "$f")"
  echo "$id $(basename "$f")"
  echo "$id $f" >> "$out/ids"
done
echo
echo "== download and verify"
while read -r id f; do
  dfs-client download "$id" "$out/$(basename "$f")" >/dev/null
  cmp "$f" "$out/$(basename "$f")"
  echo "ok  $(sha256sum "$f" | cut -c1-16)…  $f"
done < "$out/ids"
echo
echo "== upload them all again: dedup sends nothing new"
for f in test-files/*; do
  [ "$(basename "$f")" = README.md ] && continue
  dfs-client upload --json "$f" | python -c \
    'import json,sys; r=json.load(sys.stdin); print("%s: %d new chunks, %d bytes sent" % (r["name"], r["new_chunks"], r["bytes_sent"]))'
done
echo
echo "== the same files through the S3 gateway (dfs-s3 at $AWS_ENDPOINT_URL_S3, boto3)"
python - <<'PY'
import boto3, hashlib, pathlib  # endpoint and access key: the AWS_* lines of `start`
s3 = boto3.client("s3")
s3.create_bucket(Bucket="demo")
for f in sorted(pathlib.Path("test-files").iterdir()):
    s3.put_object(Bucket="demo", Key=f.name, Body=f.read_bytes())
    back = s3.get_object(Bucket="demo", Key=f.name)["Body"].read()
    assert back == f.read_bytes(), f
    print(f"ok  {hashlib.sha256(back).hexdigest()[:16]}…  s3://demo/{f.name}")
PY
if command -v aws >/dev/null 2>&1; then
  aws --endpoint-url "$AWS_ENDPOINT_URL_S3" s3 cp --only-show-errors test-files/hello.txt s3://demo/cli/hello.txt
  aws --endpoint-url "$AWS_ENDPOINT_URL_S3" s3 ls s3://demo/cli/
fi
echo
echo "== stats"
DFS_TOKEN="$admin_token" dfs-client stats
rm -rf "$out"
if [ "$keep" = 1 ]; then
  echo
  echo "cluster left running: bash scripts/cluster.sh status --dir $base | stop --dir $base"
  echo "use it from a shell: eval \"\$(bash scripts/cluster.sh env --dir $base)\""
fi
