#!/usr/bin/env bash
# Installs the fine-tuning recipe's environment (trainers/requirements.txt: JAX on CPU, Flax,
# transformers; about 200 MB to download, 0.9 GB installed) into .cache/trainer-venv and
# prints the path of its python. Reinstalls when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/trainer-venv
stamp="$venv/.requirements.sha256"
want=$(sha256sum trainers/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r trainers/requirements.txt >&2
    echo "$want" > "$stamp"
fi
echo "$PWD/$venv/bin/python"
