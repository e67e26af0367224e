#!/usr/bin/env bash
# Every test (library, binaries, tests/*.rs) in three lanes at once, each lane with a LocalStack
# of its own. Why: a handful of end-to-end tests spend minutes waiting on real clocks (alarm
# evaluation each minute, cluster leases expiring, a daemon running for minutes) with the CPU
# idle; run one after the other they were over half of CI's time. Each lane's LocalStack keeps
# its CloudWatch and S3 state apart, so no test sees another lane's alarms, metrics or buckets.
# Tests that use podman or fixed example names stay in the "rest" lane, one binary at a time as
# `cargo test` runs them. Benchmarks are measurements, run by `cargo bench` and bench/run.sh.
#
# Called by scripts/test.sh, which has installed the packages and LocalStack's venv. The rest
# lane prints as it goes; the other lanes' output follows when they end. Exit status 0 only if
# every lane passed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Lanes of their own: the slowest waiting tests (minutes each), with a few shorter ones so the
# three lanes take about as long (seconds in a run at load 9: monitor_localstack 424,
# once_localstack 73, hostile_input 43, daemon 38, cluster_alarms 80; cluster 315,
# long_running 241; the rest about 730 together).
WAITING_LANES=(
    "monitor:--test monitor_localstack --test once_localstack --test hostile_input --test daemon --test cluster_alarms"
    "cluster:--test cluster --test long_running"
)

# Build everything once, in the foreground, so compile errors show up plainly and the lanes only run.
cargo test --no-run --lib --bins --tests

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

waiting=()
declare -A lane_pid
for lane in "${WAITING_LANES[@]}"; do
    name="${lane%%:*}"
    read -r -a args <<< "${lane#*:}"
    for ((i = 1; i < ${#args[@]}; i += 2)); do waiting+=("${args[$i]}"); done
    {
        started=$SECONDS
        scripts/localstack.sh with cargo test --no-fail-fast "${args[@]}" && lane_status=0 || lane_status=$?
        echo "$lane_status $((SECONDS - started))" > "$logs/$name.result"
    } > "$logs/$name.log" 2>&1 &
    lane_pid[$name]=$!
done

# The rest lane: every other test target, discovered so a new tests/*.rs file is never missed.
rest=(--lib --bins)
for file in tests/*.rs; do
    target="$(basename "$file" .rs)"
    [[ " ${waiting[*]} " == *" $target "* ]] || rest+=(--test "$target")
done
rest_started=$SECONDS
status=0
scripts/localstack.sh with cargo test --no-fail-fast "${rest[@]}" || status=1
summary="rest: $((SECONDS - rest_started)) s, $([ $status = 0 ] && echo passed || echo FAILED)"

for lane in "${WAITING_LANES[@]}"; do
    name="${lane%%:*}"
    wait "${lane_pid[$name]}" || true
    read -r lane_status lane_seconds < "$logs/$name.result" || { lane_status=1; lane_seconds="?"; }
    echo
    echo "======== lane $name (${lane#*:}) ========"
    cat "$logs/$name.log"
    summary+=$'\n'"$name: $lane_seconds s, $([ "$lane_status" = 0 ] && echo passed || echo FAILED)"
    [ "$lane_status" = 0 ] || status=1
done

echo
echo "======== lanes ========"
echo "$summary"
exit $status
