#!/usr/bin/env bash
# README command 1. On a fresh Debian 12 with the Rust toolchain and Python/pip: installs
# missing system packages, builds hotfolderd (release), fetches and imports the Whisper
# model, then transcribes the files given (or a bundled spoken sample) into var/out/.
#   scripts/setup.sh [--model tiny.en|base] [FILE...]
set -euo pipefail
cd "$(dirname "$0")/.."

model=tiny.en
if [ "${1:-}" = "--model" ]; then
    model="${2:?--model needs tiny.en or base}"
    shift 2
fi

scripts/deps.sh
echo "setup: building hotfolderd (release; the first build takes several minutes)" >&2
cargo build --release --locked
scripts/fetch-model.sh "$model" target/release/hotfolderd
scripts/fetch-model.sh silero-vad target/release/hotfolderd
scripts/make-sample.sh

language=en
[ "$model" = base ] && language=auto
if [ $# -eq 0 ]; then
    set -- var/samples/sample.wav
fi
exec target/release/hotfolderd transcribe --model "var/models/ggml-${model}.bin" \
    --language "$language" --out var/out "$@"
