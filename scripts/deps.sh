#!/usr/bin/env bash
# Installs the system packages hotfolderd needs to build, run and test, when missing.
# Debian 12; needs root (or sudo). Safe to re-run: does nothing when all are present.
set -euo pipefail

# cmake + C/C++ toolchain: whisper.cpp.  clang/libclang-dev (14 on Debian 12): bindgen
# (libclang1-14 alone is not enough: it silently falls back).  libopus-dev + pkg-config: Opus.
# ffmpeg, espeak-ng, sox: test audio and the bundled sample. python3-venv: the S3/SQS
# emulator (moto) the tests run, installed from PyPI into a venv. systemd: systemd-analyze,
# which scores the unit's hardening in the tests.
PACKAGES=(cmake build-essential pkg-config clang libclang-dev libopus-dev ffmpeg espeak-ng sox python3-venv systemd)
# --test adds what only the test suite needs: lintian checks the Debian package, curl makes
# the API tests' multipart uploads, headless Chromium (driven by chromedriver) loads the dashboard.
if [ "${1:-}" = "--test" ]; then
    PACKAGES+=(lintian curl chromium chromium-driver)
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
