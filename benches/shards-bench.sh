#!/usr/bin/env bash
# The metadata tier across shard groups. For 1, 2 and 4 groups: `tessera
# cluster up --shards N` (3 meta, 6 block, 1 router), four users with four
# writers each (16 clients) putting 4 KiB files for DURATION seconds; the sum
# of their puts/s is the cluster's commit rate (one metadata commit per put).
# Then one user with FILES files of VERSIONS versions each moves between
# groups, idle and again under its own 4-writer load (the writers' p99 with and
# without the move). Not part of the test suite.
# Usage: benches/shards-bench.sh [DURATION] [FILES] [VERSIONS]
#   e.g. benches/shards-bench.sh 10 10000 10    (10k files, 100k versions)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/setup
set +e
cargo build --locked --workspace --bins --tests >&2 || exit 1
bin="${CARGO_TARGET_DIR:-target}/debug"
duration="${1:-10}"
files="${2:-10000}"
versions="${3:-10}"
dir=""
trap '[ -n "$dir" ] && { "$bin/tessera" cluster down --dir "$dir" >/dev/null 2>&1; rm -rf "$dir"; }' EXIT

as_user() { # NAME: exports the credentials of a new user
  local creds
  creds="$("$bin/tessera" --json admin user create "$1")" || exit 1
  TESSERA_ACCESS_KEY=$(echo "$creds" | python3 -c "import json,sys; print(json.load(sys.stdin)['access_key'])")
  TESSERA_SECRET_KEY=$(echo "$creds" | python3 -c "import json,sys; print(json.load(sys.stdin)['secret_key'])")
  export TESSERA_ACCESS_KEY TESSERA_SECRET_KEY
}

ops() { sed -n 's/.*: \([0-9.]*\) ops\/s.*/\1/p'; }

for groups in 1 2 4; do
  dir="$(mktemp -d /tmp/tessera-shards-bench.XXXXXX)"
  "$bin/tessera" cluster up --dir "$dir" --shards "$groups" --gc-interval 0 --repair-interval 0 >/dev/null || exit 1
  . "$dir/env"
  pids=()
  for u in 1 2 3 4; do
    ( as_user "writer$u"
      "$bin/tessera" bench native --workload put --size 4KiB --concurrency 4 --duration "$duration" 2>&1 | tail -1 \
        > "$dir/bench-$u.txt" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  total=$(cat "$dir"/bench-*.txt | ops | paste -sd+ | bc -l)
  printf '| %d group(s) | 16 clients (4 users × 4) | %.0f puts/s |\n' "$groups" "$total"
  "$bin/tessera" admin shard status | sed 's/^/    /'
  if [ "$groups" = 2 ]; then
    as_user heavy
    "$bin/tessera" bench native --workload put --size 4KiB --concurrency 16 \
      --count "$((files * versions))" --files "$files" >/dev/null 2>&1 || exit 1
    home=$("$bin/tessera" --json admin shard status | python3 -c "
import json,sys
for g in json.load(sys.stdin)['groups']:
    if 'heavy' in g['user_ids']: print(g['group'])")
    other=$(( home == 1 ? 2 : 1 ))
    echo "idle move of a user with $files files, $((files * versions)) versions:"
    "$bin/tessera" admin user move heavy --to "$other" 2>&1 | sed 's/^/    /'
    echo "writers alone (4 clients on the moving user):"
    "$bin/tessera" bench native --workload put --size 4KiB --concurrency 4 --duration "$duration" 2>&1 | tail -1 | sed 's/^/    /'
    # Long enough to span both moves (each takes seconds for a user this large).
    echo "writers while the user moves back and forth ($((duration * 4)) s):"
    "$bin/tessera" bench native --workload put --size 4KiB --concurrency 4 --duration "$((duration * 4))" 2>&1 | tail -1 \
      | sed 's/^/    /' &
    bench=$!
    sleep 1
    for to in "$home" "$other"; do
      "$bin/tessera" admin user move heavy --to "$to" 2>&1 | sed 's/^/    /'
    done
    wait "$bench"
  fi
  "$bin/tessera" cluster down --dir "$dir" >/dev/null 2>&1
  rm -rf "$dir"
  dir=""
done
