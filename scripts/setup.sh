#!/usr/bin/env bash
# README command 1. On a fresh Debian 12 with the Rust toolchain and Python/pip: installs
# missing system packages, builds hotfolderd (release), fetches and imports the Whisper and
# VAD models, then starts the daemon on config/hotfolderd.toml (var/inbox → var/out) with a
# spoken sample dropped in. Given files, it transcribes those instead and exits.
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
bin=target/release/hotfolderd
if [ $# -gt 0 ]; then
    exec "$bin" transcribe --model "var/models/ggml-${model}.bin" --language "$language" --out var/out "$@"
fi

# No files given: run the daemon on the development config, with the sample dropped in.
mkdir -p var/inbox var/out
[ -e var/out/sample.json ] || cp var/samples/sample.wav var/inbox/sample.wav
echo "setup: hotfolderd is running. Drop audio files into var/inbox/; transcripts appear in var/out/." >&2
echo "setup: 'hotfolderd status' shows what happened to every file; Ctrl-C stops." >&2
export HOTFOLDERD_ASR_MODEL="var/models/ggml-${model}.bin" HOTFOLDERD_ASR_LANGUAGE="$language"
exec "$bin" --verbose run --config config/hotfolderd.toml
