#!/usr/bin/env bash
# The GPU-box part of issue 19, for a machine with an NVIDIA GPU (not CI; no GPU is lent to
# this project's sessions yet). Needs a hotfolderd built with `--features cuda`, the
# trainer's environment (trainers/install-env.sh), espeak-ng and sox.
#   scripts/gpu-training-check.sh [HOTFOLDERD] [TRAINER_PYTHON] [MODEL]
# Checks, through the real daemon and recipe, that a run:
#   - is pinned to a GPU (run.json "gpu") and trains on CUDA (the recipe's "device");
#   - under gpu_policy = "exclusive" unloads the serving model and loads it again after;
#   - under gpu_policy = "shared" is held to a memory limit (the recipe's
#     "gpu_memory_limit" event) that leaves transcription its [asr] min_free_gpu_memory;
# and prints the training benchmark's figures on the GPU (full fine-tune against LoRA).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/hotfolderd}
python=${2:-$(scripts/trainer-venv.sh)}
model=${3:-$PWD/var/models/ggml-tiny.en.bin}
nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv
out=$(mktemp -d)
for policy in exclusive shared; do
    python3 scripts/bench-training.py "$bin" "$python" "$model" --files 12 --steps 40 --batch 8 \
        --gpu-policy "$policy" --json "$out/$policy.json"
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
problems = []
for policy in ("exclusive", "shared"):
    for r in json.load(open(f"{out}/{policy}.json")):
        where = f"{policy}/{r['mode']}"
        if not r["gpu"]:
            problems.append(f"{where}: no GPU recorded in run.json")
        if r["device"] != "cuda":
            problems.append(f"{where}: trained on {r['device']}, not cuda")
        if policy == "exclusive" and not (r["unloaded"] and r["reloaded"]):
            problems.append(f"{where}: the serving model was not unloaded and loaded again ({r['log']})")
        if policy == "shared" and not r["memory_limit"]:
            problems.append(f"{where}: no memory limit applied by the recipe")
        print(f"{where}: gpu {r['gpu']}, device {r['device']}, limit {r['memory_limit']}, "
              f"samples/s {r['samples_per_second']:.2f}, threshold → serving {r['to_serving']:.1f} s")
print("\n".join(problems) if problems else "GPU training check: all passed")
sys.exit(1 if problems else 0)
PY
