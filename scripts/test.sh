#!/usr/bin/env bash
# README command 2: the whole test suite, from a clean clone. Installs what is missing,
# fetches and imports the models the tests use, then lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# A clean clone gains nothing from incremental caches, and they cost gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "test: $(df -h --output=avail . | tail -1 | tr -d ' ') free on $(df --output=target . | tail -1)"
scripts/deps.sh --test
cargo build --locked --all-targets
scripts/fetch-model.sh tiny.en target/debug/hotfolderd
scripts/fetch-model.sh base target/debug/hotfolderd
scripts/fetch-model.sh silero-vad target/debug/hotfolderd
scripts/fetch-model.sh speaker target/debug/hotfolderd

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
export HOTFOLDERD_MODELS="$PWD/var/models"
# The S3/SQS tests start this emulator themselves, each on its own free port.
HOTFOLDERD_MOTO_SERVER="$(scripts/moto.sh)"
export HOTFOLDERD_MOTO_SERVER
# The fine-tuning recipe in trainers/ runs for real in tests/suite/training.rs.
HOTFOLDERD_TRAINER_PYTHON="$(scripts/trainer-venv.sh)"
export HOTFOLDERD_TRAINER_PYTHON
# tests/suite/api.rs talks to the daemon with OpenAI's official Python client.
HOTFOLDERD_CLIENT_PYTHON="$(scripts/client-venv.sh)"
export HOTFOLDERD_CLIENT_PYTHON
# tests/suite/package.rs builds the Debian package with cargo-deb.
scripts/package.sh --install-tool
# Two test threads on two cores; each speech test runs whisper on one thread.
cargo test --locked -- --test-threads=2 --skip soak::
# The fault-injection soak (2 minutes of faults, then settling) with the machine to itself.
cargo test --locked --test suite soak:: -- --nocapture
# A 20-second smoke of every fuzz target (fuzz/, libFuzzer + ASan), built unoptimised: the
# optimised build took 19 minutes of CI's 90 (scripts/fuzz.sh alone fuzzes optimised).
scripts/fuzz.sh --dev 20
echo "test: target/ holds $(du -sh target | cut -f1), fuzz/target/ $(du -sh fuzz/target | cut -f1); $(df -h --output=avail . | tail -1 | tr -d ' ') left"
