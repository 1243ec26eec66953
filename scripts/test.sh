#!/usr/bin/env bash
# README command 2: the whole test suite, from a clean clone. Installs what is missing,
# fetches and imports the models the tests use, then lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh --test
cargo build --locked --all-targets
scripts/fetch-model.sh tiny.en target/debug/hotfolderd
scripts/fetch-model.sh base target/debug/hotfolderd
scripts/fetch-model.sh silero-vad target/debug/hotfolderd

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
export HOTFOLDERD_MODELS="$PWD/var/models"
# The S3/SQS tests start this emulator themselves, each on its own free port.
HOTFOLDERD_MOTO_SERVER="$(scripts/moto.sh)"
export HOTFOLDERD_MOTO_SERVER
# The fine-tuning recipe in trainers/ runs for real in tests/training.rs.
HOTFOLDERD_TRAINER_PYTHON="$(scripts/trainer-venv.sh)"
export HOTFOLDERD_TRAINER_PYTHON
# tests/package.rs builds the Debian package with cargo-deb.
scripts/package.sh --install-tool
# Two test threads on two cores; each speech test runs whisper on one thread.
cargo test --locked -- --test-threads=2
