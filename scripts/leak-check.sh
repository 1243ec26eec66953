#!/usr/bin/env bash
# Leak check (issue 9, examples/leak_check.rs): RSS and open file descriptors of the daemon
# sampled over STUB_JOBS jobs with a stub transcriber and REAL_JOBS with whisper tiny.en;
# exits non-zero when either grows after warm-up. Prints markdown tables.
#   scripts/leak-check.sh [STUB_JOBS (1000)] [REAL_JOBS (50)]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh >&2
# The debug build the tests use: growth, not speed, is measured (whisper.cpp itself is
# always built optimised).
cargo build --locked --example leak_check --bin hotfolderd >&2
scripts/fetch-model.sh tiny.en target/debug/hotfolderd >&2
export BENCH_DIR="${BENCH_DIR:-$PWD/target/leak-check}"
trap 'rm -rf "$BENCH_DIR"' EXIT
target/debug/examples/leak_check var/models/ggml-tiny.en.bin "${1:-1000}" "${2:-50}"
