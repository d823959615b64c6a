#!/usr/bin/env bash
# Tiering move throughput and its cost on foreground traffic.
# Starts `tessera cluster up` (1 meta, 6 block, 4 block labelled cold, 1 router;
# background jobs off), sets tiers hot (4+2) and cold (3+1, zstd) with a 2 s
# demotion age, writes COUNT files of SIZE bytes (half random, half log-like
# text that compresses) and times `tessera admin tier run` (demotion: chunks
# and MiB moved per second). Reads everything back once (from the cold tier)
# and times the promoting pass. Then measures the native mixed workload alone
# and while a pass demotes another batch. Not part of the test suite.
# Usage: benches/tier-bench.sh [SIZE_BYTES] [COUNT]   e.g. benches/tier-bench.sh 4194304 64
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/setup
set +e
cargo build --locked --workspace --bins >&2 || exit 1
bin="${CARGO_TARGET_DIR:-target}/debug"
size="${1:-4194304}"
count="${2:-64}"
dir="$(mktemp -d /tmp/tessera-tier-bench.XXXXXX)"
trap '"$bin/tessera" cluster down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$bin/tessera" cluster up --dir "$dir" --meta 1 --cold 4 --gc-interval 0 --repair-interval 0 --tier-interval 0 >&2 || exit 1
. "$dir/env"
cat > "$dir/tiers.toml" <<'TOML'
[[tier]]
name = "hot"
demote_after = "2s"

[[tier]]
name = "cold"
label = "cold"
data_shards = 3
parity_shards = 1
compression = "zstd"
TOML
"$bin/tessera" admin tier set "$dir/tiers.toml" >&2 || exit 1
sleep 2 # routers follow the new tiers

field() { python3 -c "import json,sys; r=json.load(sys.stdin); print(r$1)"; }

pass() { # one timed pass; prints a table row
  local what="$1" record secs moved bytes
  record="$("$bin/tessera" --json admin tier run --move-deadline 60s)" || exit 1
  secs=$(echo "$record" | field "['elapsed_secs']")
  moved=$(echo "$record" | field "['chunks_demoted'] + r['chunks_promoted']")
  bytes=$(echo "$record" | field "['bytes_moved']")
  printf '| %s | %s files of %s bytes | %.1f s | %d chunks (%.1f/s) | %.1f MiB (%.1f MiB/s) |\n' "$what" "$count" "$size" \
    "$secs" "$moved" "$(echo "$moved / $secs" | bc -l)" "$(echo "$bytes / 1048576" | bc -l)" \
    "$(echo "$bytes / 1048576 / $secs" | bc -l)"
}

write() { # COUNT files under $1: even ones random, odd ones log-like text
  for i in $(seq 1 "$count"); do
    if (( i % 2 )); then
      python3 -c "import random,sys; r=random.Random($i); sys.stdout.write(''.join('2026-12-01T18:%02d:%02dZ INFO served user=u%d bytes=%d status=200\\n' % (r.randrange(60), r.randrange(60), r.randrange(999), r.randrange(10**6)) for _ in range($size // 60 + 1))[:$size])" > "$dir/obj"
    else
      head -c "$size" /dev/urandom > "$dir/obj"
    fi
    "$bin/tessera" put "$dir/obj" "$1/obj-$i" >/dev/null || exit 1
  done
}
read_all() { for i in $(seq 1 "$count"); do "$bin/tessera" get "$1/obj-$i" "$dir/back" >/dev/null || exit 1; done; }

write /tier-a
sleep 3 # past the demotion age
pass "demote hot → cold"
"$bin/tessera" admin tier status >&2
read_all /tier-a
pass "promote cold → hot"

mixed() { "$bin/tessera" --json bench native --workload mixed --size 1MiB --concurrency 8 --duration 20 | field "['mib_per_sec']"; }
alone=$(mixed)
batch=b
for rate in 0 20971520; do
  write "/tier-$batch"
  batch="${batch}b"
  sleep 3
  "$bin/tessera" admin tier run --max-bytes-per-sec "$rate" >/dev/null 2>&1 &
  tier_pid=$!
  during=$(mixed)
  wait "$tier_pid"
  printf '| mixed 1 MiB ×8 | alone %.1f MiB/s | during a demoting pass (max %s bytes/s, 0 = unpaced) %.1f MiB/s |\n' "$alone" "$rate" "$during"
done
