#!/usr/bin/env bash
# HTTP API benchmark (issue 21): requests per second, and the latency an upload adds over a
# file drop for short clips, with the real model (tiny.en), in one run against one daemon.
#   scripts/bench-api.sh [CLIPS]        (default 12)
# Prints medians for both paths and their ratio; work files go under target/bench-api.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
export BENCH_DIR="${BENCH_DIR:-$PWD/target/bench-api}"
rm -rf "$BENCH_DIR" && mkdir -p "$BENCH_DIR"
trap 'rm -rf "$BENCH_DIR"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
exec python3 scripts/bench_api.py "${1:-12}" target/release/hotfolderd "${HOTFOLDERD_MODELS:-$PWD/var/models}"
