#!/usr/bin/env bash
# Notification benchmarks (issue 8) with a stub transcriber and a webhook receiver in the
# benchmark process: delivery latency after a file is done, and how fast a backlog drains
# once a receiver that was down comes back.
#   scripts/bench-notify.sh [latency|drain|all]   sizes: LATENCY_FILES (200), DRAIN_FILES (2000)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
cargo build --release --locked --example notify_bench
bin=target/release/examples/notify_bench
export BENCH_DIR="${BENCH_DIR:-$PWD/target/bench-notify}"
trap 'rm -rf "$BENCH_DIR"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [[ $what == latency || $what == all ]]; then "$bin" latency "${LATENCY_FILES:-200}"; fi
if [[ $what == drain || $what == all ]]; then "$bin" drain "${DRAIN_FILES:-2000}"; fi
