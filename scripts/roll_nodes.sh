#!/usr/bin/env bash
# Roll the storage nodes onto the current release (and AMI) one at a time: Terraform ignores
# the nodes' user data, so `terraform apply` with a new release_version changes the API's launch
# template (an instance refresh) and no node; this script then replaces each node's instance in
# turn (its data volume, with its identity and chunks, moves to the new instance).
#
# Before each node: every node is live and a repair pass that started after the previous node
# came back found nothing under-replicated and nothing without a live copy (so taking one node
# down leaves every chunk a copy). After it:
# the node is back (live, heartbeating) and the API's /readyz answers 200, within the repair
# grace; otherwise the roll stops, since repair is then copying the node's chunks elsewhere.
#
# Usage: bash scripts/roll_nodes.sh [TERRAFORM ARGS...]   e.g. -var-file=prod.tfvars
# Environment:
#   DFS_TOKEN          an admin token (default: read from SSM, terraform output admin_token_parameter)
#   DFS_API_URL        the API (default: terraform output api_url)
#   DFS_ROLL_NODES     node indexes to replace, 0-based, space separated (default: all)
#   DFS_ROLL_POLL      seconds between checks (default 10)
#   TERRAFORM_DIR      the Terraform root (default: infra/terraform beside this script)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tf_dir="${TERRAFORM_DIR:-$repo/infra/terraform}"
poll="${DFS_ROLL_POLL:-10}"

log() { printf 'roll_nodes: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
tf() { terraform -chdir="$tf_dir" "$@"; }

api="${DFS_API_URL:-$(tf output -raw api_url)}"
api="${api%/}"
if [ -z "${DFS_TOKEN:-}" ]; then
  DFS_TOKEN="$(aws ssm get-parameter --with-decryption --query Parameter.Value --output text \
    --name "$(tf output -raw admin_token_parameter)")"
fi
grace="$(tf output -raw repair_grace_seconds)"
mapfile -t ips < <(tf output -json node_private_ips | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)))')
[ "${#ips[@]}" -gt 0 ] || die "no nodes in the Terraform state"

get() { # PATH: the API's JSON answer
  curl -fsS --max-time 20 -H "Authorization: Bearer ${DFS_TOKEN}" "${api}$1"
}
# python3 reads the JSON: field lookups are not worth a jq dependency
py() { python3 -c "$1" "${@:2}"; }

healthy() { # AFTER: every node live; a repair pass started after AFTER found nothing short
  local nodes repair
  nodes="$(get /nodes)" && repair="$(get /admin/repair)" || return 1
  py 'import json,sys
n, r = json.loads(sys.argv[1]), json.loads(sys.argv[2]).get("repair") or {}
ok = all(x["live"] for x in n["nodes"]) and not r.get("running", True) \
    and r.get("started_at", 0) > float(sys.argv[3]) \
    and r.get("under_replicated", 1) == 0 and r.get("no_live_copy", 1) == 0
sys.exit(0 if ok else 1)' "$nodes" "$repair" "$1"
}

node_at() { # IP: the node id registered from that address
  py 'import json,sys
from urllib.parse import urlsplit
ids = [x["node_id"] for x in json.loads(sys.argv[1])["nodes"] if urlsplit(x["url"]).hostname == sys.argv[2]]
print(ids[0] if ids else "")' "$(get /nodes)" "$1"
}

back() { # NODE_ID SINCE: live with a heartbeat after SINCE, and the API ready
  local nodes
  nodes="$(get /nodes)" || return 1
  curl -fsS --max-time 20 -o /dev/null "${api}/readyz" || return 1
  py 'import json,sys
n = [x for x in json.loads(sys.argv[1])["nodes"] if x["node_id"] == sys.argv[2]]
sys.exit(0 if n and n[0]["live"] and n[0]["last_heartbeat"] > float(sys.argv[3]) else 1)' \
    "$nodes" "$1" "$2"
}

wait_for() { # SECONDS WHAT COMMAND...: poll until COMMAND succeeds
  local deadline=$((SECONDS + $1)) what="$2"
  shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    log "waiting: ${what}"
    sleep "$poll"
  done
}

indexes="${DFS_ROLL_NODES:-$(seq -s ' ' 0 $((${#ips[@]} - 1)))}"
since=0
for i in $indexes; do
  [ "$i" -lt "${#ips[@]}" ] || die "no node index $i"
  wait_for "$grace" "every node live, a repair pass since with nothing short" healthy "$since" ||
    die "the cluster is not healthy (GET /nodes, GET /admin/repair): not rolling node $i"
  node_id="$(node_at "${ips[$i]}")"
  [ -n "$node_id" ] || die "no registered node at ${ips[$i]} (node index $i)"
  log "replacing node $i (${node_id}, ${ips[$i]})"
  since="$(date +%s)"
  tf apply -auto-approve -input=false -replace="aws_instance.node[$i]" \
    -target="aws_volume_attachment.data[$i]" "$@"
  wait_for "$grace" "${node_id} live again and /readyz 200" back "$node_id" "$since" ||
    die "${node_id} not back within the repair grace (${grace} s): repair now copies its chunks; fix the node before rolling on"
  log "node $i (${node_id}) is back"
  mapfile -t ips < <(tf output -json node_private_ips | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)))')
done
log "every node rolled"
