#!/usr/bin/env bash
# Installs the fine-tuning recipe's Python environment (requirements.txt beside this script:
# PyTorch, transformers 5, PEFT; about 3 GB to download, 5.6 GB installed, no pip cache kept)
# into DIR and prints the path of its python. Reinstalls only when the requirements change.
#   from a clone:   scripts/trainer-venv.sh            (DIR = .cache/trainer-venv)
#   from the .deb:  sudo /usr/share/hotfolderd/trainers/install-env.sh   (DIR below)
# Then name that python in [dataset.trainer] command (see /etc/hotfolderd/hotfolderd.toml).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-/var/lib/hotfolderd/trainer-venv}
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    # Replaced whole, but only a venv (or nothing): never a folder that is something else.
    if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv")" ]; then
        echo "install-env: $venv exists and is not a Python venv; give another folder" >&2
        exit 1
    fi
    if ! python3 -c 'import ensurepip' 2>/dev/null; then
        echo "install-env: python3 with venv support is missing: apt-get install python3-venv" >&2
        exit 1
    fi
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check -r "$req" >&2
    echo "$want" > "$stamp"
fi
echo "$(cd "$venv" && pwd)/bin/python"
