#!/usr/bin/env bash
# Garbage-collection throughput and its cost on foreground traffic.
# Starts `tessera cluster up` (3 meta, 6 block, 1 router; background GC off),
# writes COUNT objects of SIZE with `tessera bench native`, purges them, and
# times `tessera admin gc run` (fragments examined and deleted per second). Then
# measures the native mixed workload alone and while a second pass deletes
# another batch. Not part of the test suite.
# Usage: benches/gc-bench.sh [SIZE] [COUNT]     e.g. benches/gc-bench.sh 64KiB 3000
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/setup
set +e
cargo build --locked --workspace --bins --tests >&2 || exit 1
bin="${CARGO_TARGET_DIR:-target}/debug"
size="${1:-64KiB}"
count="${2:-3000}"
dir="$(mktemp -d /tmp/tessera-gc-bench.XXXXXX)"
trap '"$bin/tessera" cluster down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$bin/tessera" cluster up --dir "$dir" --gc-interval 0 --repair-interval 0 >&2 || exit 1
. "$dir/env"

fill() { # writes $count objects under /bench, then purges them
  "$bin/tessera" bench native --workload put --size "$size" --count "$count" --concurrency 8 >/dev/null || exit 1
  "$bin/tessera" rm /bench --purge >/dev/null || exit 1
}

field() { python3 -c "import json,sys; r=json.load(sys.stdin); print(r$1)"; }

fill
sleep 4 # let the grace pass
start=$(date +%s.%N)
record="$("$bin/tessera" --json admin gc run --grace 3s --max-deletes-per-sec 0)"
end=$(date +%s.%N)
secs=$(echo "$end - $start" | bc -l)
examined=$(echo "$record" | field "['fragments_examined']")
deleted=$(echo "$record" | field "['fragments_deleted']")
freed=$(echo "$record" | field "['bytes_freed']")
printf '| gc pass | %s objects of %s | %.1f s | %d fragments examined (%.0f/s) | %d deleted (%.0f/s) | %.1f MiB freed |\n' \
  "$count" "$size" "$secs" "$examined" "$(echo "$examined / $secs" | bc -l)" "$deleted" \
  "$(echo "$deleted / $secs" | bc -l)" "$(echo "$freed / 1048576" | bc -l)"

mixed() { "$bin/tessera" --json bench native --workload mixed --size 1MiB --concurrency 8 --duration 20 | field "['mib_per_sec']"; }
alone=$(mixed)
for rate in 0 2000; do
  fill
  sleep 4
  "$bin/tessera" admin gc run --grace 3s --max-deletes-per-sec "$rate" >/dev/null 2>&1 &
  gc_pid=$!
  during=$(mixed)
  wait "$gc_pid"
  printf '| mixed 1 MiB ×8 | alone %.1f MiB/s | during a GC pass (max %s deletes/s) %.1f MiB/s |\n' "$alone" "$rate" "$during"
done
