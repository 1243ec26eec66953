#!/usr/bin/env bash
# Installs the fine-tuning recipe's environment into .cache/trainer-venv and prints the path
# of its python: the same script the .deb ships (trainers/install-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash trainers/install-env.sh "$PWD/.cache/trainer-venv"
