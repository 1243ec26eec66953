#!/usr/bin/env bash
# Installs the client libraries the API tests talk to the daemon with (OpenAI's official
# Python package, pinned) into .cache/client-venv and prints the path of its python.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/client-venv
if ! "$venv/bin/python" -c 'import openai' 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==3.63.0" >&2
fi
echo "$PWD/$venv/bin/python"
