#!/usr/bin/env bash
# Builds the Debian package: target/debian/hotfolderd_<version>-1_<arch>.deb (or under
# target/portable/debian for the release build). Installs cargo-deb when missing.
#   scripts/package.sh [--features cuda]        portable release build (scripts/build-portable.sh)
#   scripts/package.sh --profile dev [-o DIR]   the debug binary already built (tests)
#   scripts/package.sh --install-tool           only install cargo-deb
# Then: apt install ./target/portable/debian/hotfolderd_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
profile=release
if [ "${1:-}" = "--profile" ]; then
    profile="$2"
    shift 2
fi
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    echo "package: installing cargo-deb $CARGO_DEB_VERSION (about 2 minutes)" >&2
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
fi
if [ "${1:-}" = "--install-tool" ]; then
    exit 0
fi

if [ "$profile" = release ]; then
    # Ship a binary that runs on any AVX2 machine, not only on this CPU.
    features=()
    if [ "${1:-}" = "--features" ]; then
        features=(--features "$2")
        shift 2
    fi
    scripts/build-portable.sh "${features[@]}"
    export CARGO_TARGET_DIR=target/portable
    bin=target/portable/release/hotfolderd
elif [ "$profile" = dev ]; then
    bin=target/debug/hotfolderd
else
    bin=target/$profile/hotfolderd
fi

# The package carries the Silero VAD model (under 1 MB), so the service skips non-speech
# from the start; the Whisper model is the admin's choice.
scripts/fetch-model.sh silero-vad "$bin"

# Manual pages come from the CLI definition, so they match `--help` of this very binary.
rm -rf target/man
"$bin" man --out target/man
gzip -9n target/man/*.1

# --strip: the package carries no debug info (a debug build's binary is ~360 MB before).
cargo deb --no-build --profile "$profile" --strip "$@"
