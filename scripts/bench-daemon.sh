#!/usr/bin/env bash
# Daemon benchmarks (issue 4) with a stub transcriber: what is measured is the folder
# source, stability gate, journal and workers, not the model.
#   scripts/bench-daemon.sh [latency|intake|idle|all]
# Sizes: LATENCY_FILES (1000), INTAKE_FILES (10000), IDLE_FILES (100000), IDLE_SECS (60).
# Work files go under BENCH_DIR (target/bench-daemon) and are removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
cargo build --release --locked --example daemon_bench
bin=target/release/examples/daemon_bench
export BENCH_DIR="${BENCH_DIR:-$PWD/target/bench-daemon}"
trap 'rm -rf "$BENCH_DIR"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [[ $what == latency || $what == all ]]; then "$bin" latency "${LATENCY_FILES:-1000}"; fi
if [[ $what == intake || $what == all ]]; then "$bin" intake "${INTAKE_FILES:-10000}"; fi
if [[ $what == idle || $what == all ]]; then "$bin" idle "${IDLE_FILES:-100000}" "${IDLE_SECS:-60}"; fi
