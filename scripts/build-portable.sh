#!/usr/bin/env bash
# Release build to ship to other machines (packaging uses this). whisper.cpp otherwise
# compiles with -march=native (GGML_NATIVE=ON) and such a binary can die with "illegal
# instruction" on an older CPU. This build targets x86-64 with AVX2/FMA/F16C, which every
# x86 GPU server of the last decade has. whisper-rs-sys forwards GGML_* to cmake but does not
# rebuild when they change, hence the separate target directory.
#   scripts/build-portable.sh [cargo build args, e.g. --features cuda]
# Output: target/portable/release/hotfolderd
set -euo pipefail
cd "$(dirname "$0")/.."
export GGML_NATIVE=OFF GGML_AVX=ON GGML_AVX2=ON GGML_FMA=ON GGML_F16C=ON GGML_BMI2=ON
export CARGO_TARGET_DIR=target/portable
cargo build --release --locked "$@"
echo "portable build: $CARGO_TARGET_DIR/release/hotfolderd"
