#!/usr/bin/env bash
# Fault-injection soak (issue 9): tests/suite/soak/ — the real daemon, a watched folder and
# the S3/SQS emulator, files and uploads of every kind, and at random moments kill -9,
# emulator outages, a read-only output folder, a full disk (as root: a tmpfs) and SIGHUP with
# good and broken configs; then every input is reconciled. The test suite runs it for 2
# minutes; this runs it for SECONDS (default 1800) and writes the table to REPORT.
#   scripts/soak.sh [SECONDS] [REPORT]      e.g. scripts/soak.sh 1800 target/soak.md
# Env: HOTFOLDERD_SOAK_SEED (replay the choices), HOTFOLDERD_SOAK_GAP_MS (mean ms between
# drops, default 4000). Exits non-zero on any discrepancy.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-1800}"
report="${2:-target/soak.md}"
scripts/deps.sh --test >&2
cargo build --locked --tests >&2
scripts/fetch-model.sh tiny.en target/debug/hotfolderd >&2
export HOTFOLDERD_MODELS="$PWD/var/models"
HOTFOLDERD_MOTO_SERVER="$(scripts/moto.sh)"
export HOTFOLDERD_MOTO_SERVER
mkdir -p "$(dirname "$report")"
HOTFOLDERD_SOAK_SECS="$secs" HOTFOLDERD_SOAK_REPORT="$(realpath "$report")" \
    cargo test --locked --test suite soak:: -- --nocapture
