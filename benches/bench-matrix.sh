#!/usr/bin/env bash
# Throughput matrix: starts `tessera cluster up` (3 meta, 6 block, 1 router
# processes on 127.0.0.1) in a temporary dir, runs `tessera bench $API` (s3 or
# native) for each size × concurrency × workload, and prints a Markdown table
# with the router's and the block nodes' CPU per MiB (from /proc/PID/stat).
# Not part of the test suite.
# Usage: [API=s3|native] [WORKLOADS="put get"] benches/bench-matrix.sh [SIZES] [CONCURRENCIES]
#   e.g. benches/bench-matrix.sh "4KiB 1MiB 64MiB 1GiB" "1 8 32"
#        API=native WORKLOADS="put get mixed multipart list delta-sync" benches/bench-matrix.sh "1MiB 64MiB" "1 8"
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/setup
# Same flags as .ci/test, so the build is reused rather than redone.
cargo build --locked --workspace --bins --tests >&2
bin="${CARGO_TARGET_DIR:-target}/debug"
api="${API:-s3}"
sizes="${1:-4KiB 1MiB 64MiB 1GiB}"
concurrencies="${2:-1 8 32}"
dir="$(mktemp -d /tmp/tessera-s3-bench.XXXXXX)"
trap '"$bin/tessera" cluster down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$bin/tessera" cluster up --dir "$dir" >&2
. "$dir/env"

ticks() { # total utime+stime of the given pids, in clock ticks
  local t=0 pid
  for pid in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$t"
}
router_pid=$(python3 -c 'import json,sys; print(" ".join(str(p["pid"]) for p in json.load(open(sys.argv[1])) if p["kind"]=="router"))' "$dir/cluster.json")
block_pids=$(python3 -c 'import json,sys; print(" ".join(str(p["pid"]) for p in json.load(open(sys.argv[1])) if p["kind"]=="block"))' "$dir/cluster.json")
hz=$(getconf CLK_TCK)

# Operations per run: enough for a stable figure, bounded in bytes and time.
count_for() {
  case "$1" in
    4KiB) echo 2000 ;;
    1MiB) echo 400 ;;
    64MiB) echo 16 ;;
    1GiB) echo "$2" ;; # one object per worker
  esac
}

echo "| workload | size × concurrency | ops/s | MiB/s | p50 / p99 ms | router CPU ms/MiB | block CPU ms/MiB | client CPU s | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for size in $sizes; do
  for c in $concurrencies; do
    [ "$size" = 1GiB ] && [ "$c" -gt 8 ] && continue # 32 GiB per run is beyond this machine's disk budget
    for w in ${WORKLOADS:-put get}; do
      n=$(count_for "$size" "$c")
      # Gets read objects a first pass writes, outside the measured run.
      # Gets and mixed runs read objects, and lists list objects, that a first
      # pass writes outside the measured run (S3 keeps them across runs).
      [ "$api" = s3 ] && case "$w" in get|mixed|list)
        "$bin/tessera" bench s3 --workload "$w" --size "$size" --concurrency "$c" --count 0 >/dev/null ;;
      esac
      r0=$(ticks $router_pid); b0=$(ticks $block_pids)
      out=$("$bin/tessera" --json bench "$api" --workload "$w" --size "$size" --concurrency "$c" --count "$n" --duration 120)
      r1=$(ticks $router_pid); b1=$(ticks $block_pids)
      python3 - "$out" "$((r1 - r0))" "$((b1 - b0))" "$hz" <<'EOF'
import json, sys
r = json.loads(sys.argv[1]); rt, bt, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mib = r["ops"] * r["size_bytes"] / 2**20 or 1
size = r["size_bytes"]
label = f"{size >> 30} GiB" if size >= 1 << 30 else f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
if r["workload"] == "list":
    label, mib = "1000 keys", r["ops"]  # CPU per listing instead of per MiB
if r.get("bytes_sent"):
    label += f" (sent {100 * r['bytes_sent'] / (r['ops'] * size):.0f}%)"
print(f"| {r['workload']} | {label} × {r['concurrency']} | {r['ops_per_sec']:.1f} | {r['mib_per_sec']:.1f} | "
      f"{r['latency_ms']['p50']:.0f} / {r['latency_ms']['p99']:.0f} | {rt * 1000 / hz / mib:.1f} | "
      f"{bt * 1000 / hz / mib:.1f} | {r['client_cpu_seconds']:.2f} | {r['errors']} |")
EOF
    done
  done
done
