#!/usr/bin/env bash
# Installs the S3/SQS emulator the tests start (moto's server, pinned) into .cache/moto-venv
# and prints the path of its `moto_server`. The tests start one on a free 127.0.0.1 port.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/moto-venv
if [ ! -x "$venv/bin/moto_server" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==5.2.5" >&2
fi
echo "$PWD/$venv/bin/moto_server"
