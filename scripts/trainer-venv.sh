#!/usr/bin/env bash
# Installs the fine-tuning recipe's environment (trainers/requirements.txt: PyTorch, transformers 5,
# PEFT; about 3 GB to download, 5.6 GB installed, no pip cache kept) into .cache/trainer-venv and
# prints the path of its python. Reinstalls when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/trainer-venv
stamp="$venv/.requirements.sha256"
want=$(sha256sum trainers/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check -r trainers/requirements.txt >&2
    echo "$want" > "$stamp"
fi
echo "$PWD/$venv/bin/python"
