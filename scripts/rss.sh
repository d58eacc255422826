#!/usr/bin/env bash
# The daemon's resident memory at rest with N releases against moto (an out-of-process AWS).
#
#   ./scripts/rss.sh [BINARY] [N ...]     # default: target/release/switchyard, 100 1000
#
# For each N: fresh moto servers (one for the table, one for the rest), N CodeDeploy blue/green services made by
# tests/fixtures/moto_world.py, the table, N releases applied whose candidate is the live
# version (so every release is Healthy: the fleet at rest), then `switchyard run` until every
# release has a status (at most RSS_SETTLE_MINUTES, 60 by default) and three more resync
# periods, sampled every second (the least, the most and the last VmRSS and heap); then VmHWM
# from /proc/<pid>/status, the anonymous memory from
# /proc/<pid>/smaps_rollup, the allocator's own account of its heap (jemalloc's, from the
# daemon's /metrics: the bytes it holds, and the allocator's resident bytes, so that RSS that
# is free memory the allocator keeps shows as the difference) and the phases from the status
# API. Prints one JSON object per N, and writes them all to target/bench/rss.json (and the
# daemon's log, warnings and errors, to target/bench/rss-daemon-N.log).
#
# RSS_REST_MINUTES waits that long at rest before sampling (see below).
# RSS_WRAPPER runs the daemon under a tool, e.g. RSS_WRAPPER="heaptrack -o /tmp/ht.%p";
# the figures are then the daemon's own (the wrapper's child), with the tool's cost in them.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
binary="${1:-$repo/target/release/switchyard}"
shift || true
sizes=("${@:-100 1000}")
# shellcheck disable=SC2206
sizes=(${sizes[*]})
resync=10
settle_minutes="${RSS_SETTLE_MINUTES:-60}"
python="$repo/.venv-moto/bin/python"
moto="$repo/.venv-moto/bin/moto_server"
out="$repo/target/bench/rss.json"
mkdir -p "$repo/target/bench"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

results=()
for n in "${sizes[@]}"; do
  # Two moto servers: one for the table and its stream, one for ECS, ELB, CodeDeploy and
  # CloudWatch. moto answers in threads under one interpreter lock, and its DynamoDB copies
  # the whole table with its stream history for every transaction (TransactWriteItems, the
  # status writes): with one plain server, a fleet of 500 starved the store calls and they
  # timed out. The table's server is scripts/moto_table_server.py, which copies less.
  moto_pids=()
  ports=()
  for role in aws table; do
    port="$(free_port)"
    if [ "$role" = table ]; then
      # moto, its transactions linear in what they touch (see the script).
      "$python" "$repo/scripts/moto_table_server.py" -p "$port" >"$work/moto-$role-$n.log" 2>&1 &
    else
      "$moto" -p "$port" >"$work/moto-$role-$n.log" 2>&1 &
    fi
    moto_pids+=($!)
    pids+=($!)
    ports+=("$port")
    for _ in $(seq 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
      sleep 0.2
    done
  done
  endpoint="http://127.0.0.1:${ports[0]}"
  table_endpoint="http://127.0.0.1:${ports[1]}"
  export AWS_ENDPOINT_URL="$endpoint" AWS_ENDPOINT_URL_DYNAMODB="$table_endpoint" \
    AWS_ENDPOINT_URL_DYNAMODB_STREAMS="$table_endpoint" AWS_ACCESS_KEY_ID=test \
    AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    SWITCHYARD_TABLE=switchyard-rss
  names=()
  for i in $(seq 0 $((n - 1))); do names+=("svc-$i"); done
  started=$(date +%s)
  # moto_world.py takes names on the command line; 100 at a time, two clients at once (moto
  # answers requests in threads).
  printf '%s\n' "${names[@]}" | xargs -P 2 -n 100 "$python" "$repo/tests/fixtures/moto_world.py" "$endpoint" >/dev/null
  echo "rss: $n services in $(( $(date +%s) - started )) s" >&2
  "$binary" table create >/dev/null
  docs="$work/releases-$n.yaml"
  : >"$docs"
  for name in "${names[@]}"; do
    cat >>"$docs" <<EOF
---
apiVersion: switchyard.dev/v1
kind: Release
metadata:
  name: $name
spec:
  service: {cluster: prod, name: $name}
  taskDefinition:
    from: $name
    containers:
      $name:
        image: registry.example.com/$name:1.0.0
  strategy:
    codeDeploy:
      application: $name
      deploymentGroup: $name-prod
EOF
  done
  "$binary" apply -f "$docs" >/dev/null
  listen_port="$(free_port)"
  # shellcheck disable=SC2086
  SWITCHYARD_RESYNC_PERIOD="${resync}s" SWITCHYARD_LISTEN="127.0.0.1:$listen_port" \
    SWITCHYARD_LOG_LEVEL=warn ${RSS_WRAPPER:-} "$binary" run >"$work/daemon-$n.log" 2>&1 &
  launched=$!
  pids+=("$launched")
  daemon=$launched
  started=$(date +%s)
  for _ in $(seq 600); do
    if curl -fs "http://127.0.0.1:$listen_port/readyz" >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
  if [ -n "${RSS_WRAPPER:-}" ]; then
    # The daemon is the wrapper's child running the binary.
    for child in $(pgrep -P "$launched" || true); do
      if [ "$(readlink -f "/proc/$child/exe")" = "$(readlink -f "$binary")" ]; then daemon=$child; fi
    done
    pids+=("$daemon")
  fi
  # At rest: every release has a status (a pass has looked at it), then three resync periods.
  for _ in $(seq $((settle_minutes * 12))); do
    unseen=$(curl -fs "http://127.0.0.1:$listen_port/api/v1/releases" |
      "$python" -c 'import json,sys; d=json.load(sys.stdin); d=d.get("releases",d) if isinstance(d,dict) else d; print(sum(1 for r in d if not (r.get("status") or {}).get("phase")))' || echo unknown)
    [ "$unseen" = 0 ] && break
    sleep 5
  done
  settled_s=$(( $(date +%s) - started ))
  # RSS_REST_MINUTES more at rest first (0 by default): the caches' entries from the start
  # (deployment groups, task definitions) are swept by the resyncs after their TTL (10 and 5
  # minutes), so 11 minutes measures the fleet at rest for good.
  sleep $(( ${RSS_REST_MINUTES:-0} * 60 ))
  # Three resync periods, sampled every second: a resync reads the whole fleet and holds it
  # for a moment, so the figures are reported as the least and the most seen (at rest between
  # resyncs, and at a resync's peak), and the last.
  rss_samples=() heap_samples=()
  for _ in $(seq $((3 * resync))); do
    sleep 1
    rss_samples+=("$(awk '/^VmRSS/ {print $2}' "/proc/$daemon/status")")
    heap=$(curl -fs "http://127.0.0.1:$listen_port/metrics" |
      awk '/^switchyard_heap_allocated_bytes / {print int($2/1024)}' || true)
    [ -n "$heap" ] && heap_samples+=("$heap")
  done
  least() { printf '%s\n' "$@" | sort -n | head -1; }
  most() { printf '%s\n' "$@" | sort -n | tail -1; }
  rss_kib=${rss_samples[-1]}
  rss_min_kib=$(least "${rss_samples[@]}")
  rss_max_kib=$(most "${rss_samples[@]}")
  hwm_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$daemon/status")
  anon_kib=$(awk '/^Anonymous:/ {print $2}' "/proc/$daemon/smaps_rollup")
  # jemalloc's own account (the daemon's /metrics): what the daemon holds, and what of the
  # allocator's memory is resident (held, metadata, and free memory not yet returned).
  metrics=$(curl -fs "http://127.0.0.1:$listen_port/metrics" || true)
  heap_allocated=$(awk '/^switchyard_heap_allocated_bytes / {print int($2/1024)}' <<<"$metrics")
  heap_resident=$(awk '/^switchyard_heap_resident_bytes / {print int($2/1024)}' <<<"$metrics")
  [ -n "$heap_allocated" ] || heap_allocated=null
  [ -n "$heap_resident" ] || heap_resident=null
  heap_min=null heap_max=null
  if [ "${#heap_samples[@]}" -gt 0 ]; then
    heap_min=$(least "${heap_samples[@]}")
    heap_max=$(most "${heap_samples[@]}")
  fi
  phases=$(curl -fs "http://127.0.0.1:$listen_port/api/v1/releases" |
    "$python" -c 'import json,sys,collections; d=json.load(sys.stdin); d=d.get("releases",d) if isinstance(d,dict) else d; print(json.dumps(collections.Counter((r.get("status") or {}).get("phase","none") for r in d)))')
  result="{\"releases\": $n, \"rest_minutes\": ${RSS_REST_MINUTES:-0}, \"vm_rss_kib\": $rss_kib, \"vm_rss_least_kib\": $rss_min_kib, \"vm_rss_most_kib\": $rss_max_kib, \"vm_hwm_kib\": $hwm_kib, \"anonymous_kib\": $anon_kib, \"heap_allocated_kib\": $heap_allocated, \"heap_allocated_least_kib\": $heap_min, \"heap_allocated_most_kib\": $heap_max, \"heap_resident_kib\": $heap_resident, \"settled_s\": $settled_s, \"phases\": $phases, \"binary\": \"$binary\", \"wrapper\": \"${RSS_WRAPPER:-}\"}"
  echo "$result"
  results+=("$result")
  kill "$daemon" "${moto_pids[@]}" 2>/dev/null || true
  # The wrapper (heaptrack) writes its file after the daemon exits; moto may be slow to stop.
  wait "$launched" 2>/dev/null || true
  # The daemon's warnings and errors, beside the report.
  cp "$work/daemon-$n.log" "$repo/target/bench/rss-daemon-$n.log"
  kill -9 "${moto_pids[@]}" 2>/dev/null || true
done
(IFS=,; echo "[${results[*]}]") >"$out"
echo "rss: report: $out" >&2
