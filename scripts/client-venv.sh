#!/usr/bin/env bash
# Installs the client libraries the API tests talk to the daemon with (OpenAI's official
# Python package), and the reference implementations tests compare against (Kaldi's fbank
# as kaldi-native-fbank), pinned, into .cache/client-venv and prints the path of its python.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/client-venv
if ! "$venv/bin/python" -c 'import openai, kaldi_native_fbank, numpy' 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==3.63.0" \
        "kaldi-native-fbank==1.23.0" "numpy==2.4.6" >&2
fi
echo "$PWD/$venv/bin/python"
