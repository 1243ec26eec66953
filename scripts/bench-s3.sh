#!/usr/bin/env bash
# S3/SQS benchmarks (issue 5) against the moto emulator with a stub transcriber.
#   scripts/bench-s3.sh [latency|throughput|rss|all]
# Sizes: S3_LATENCY_UPLOADS (200), S3_OBJECTS (1000), S3_BIG_MB (1024).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
HOTFOLDERD_MOTO_SERVER="$(scripts/moto.sh)"
export HOTFOLDERD_MOTO_SERVER
cargo build --release --locked --example s3_bench
bin=target/release/examples/s3_bench
export RUST_LOG="${RUST_LOG:-error}"
if [[ $what == latency || $what == all ]]; then "$bin" latency "${S3_LATENCY_UPLOADS:-200}"; fi
if [[ $what == throughput || $what == all ]]; then "$bin" throughput "${S3_OBJECTS:-1000}"; fi
if [[ $what == rss || $what == all ]]; then "$bin" rss "${S3_BIG_MB:-1024}"; fi
