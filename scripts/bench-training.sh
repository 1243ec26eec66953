#!/usr/bin/env bash
# Training benchmark (issue 19): samples/s of the fine-tuning recipe on CPU and the time from
# a dataset's threshold being crossed to the new model serving, full fine-tune (baseline)
# against LoRA, through the real daemon. FILES (12), STEPS (10), BATCH (4); work files under
# BENCH_DIR (default /tmp), removed afterwards. Not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
scripts/fetch-model.sh tiny.en target/release/hotfolderd >/dev/null
python=$(scripts/trainer-venv.sh)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
python3 scripts/bench-training.py target/release/hotfolderd "$python" "$PWD/var/models/ggml-tiny.en.bin" \
    --files "${FILES:-12}" --steps "${STEPS:-10}" --batch "${BATCH:-4}"
