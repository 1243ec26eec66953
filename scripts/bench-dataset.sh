#!/usr/bin/env bash
# Dataset benchmarks (issue 6): cutting and writing the segments of HOURS (1) of audio, and
# manifest append throughput over APPENDS (2000) appends, each against a baseline.
# Work files go under BENCH_DIR (target) and are removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --example dataset_bench
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
BENCH_DIR="${BENCH_DIR:-$PWD/target}" target/release/examples/dataset_bench "${HOURS:-1}" "${APPENDS:-2000}"
