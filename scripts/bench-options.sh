#!/usr/bin/env bash
# Benchmark (not a test): what each decoding option costs in time and changes in WER, on the
# long-form test speech (scripts/make-speech.py: four voices, five speaking rates, pauses
# from 0.25 s to 7 s). Every option runs in turn against the default in the same script, on
# the same file and threads; it prints wall time, the ratio to the default's, WER and words.
#
#   scripts/bench-options.sh [MINUTES] [THREADS]      (defaults: 3 minutes, 2 threads)
#
# tiny.en for the English options; base (multilingual) for --language-per-segment against
# base's own default. Split channels run on a stereo copy with the speech on both channels
# (twice the decoding; WER of the merged transcript counts each word twice, so its WER is
# taken on channel 0 alone). HOTFOLDERD_BIN picks another build than target/release/hotfolderd.
# Needs scripts/setup.sh run once (release build + tiny.en, base and the VAD model).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-3}"
threads="${2:-2}"
bin="${HOTFOLDERD_BIN:-target/release/hotfolderd}"
work=.cache/bench-options
mkdir -p "$work"
for m in var/models/ggml-tiny.en.bin var/models/ggml-base.bin var/models/ggml-silero-vad.bin; do
    [ -s "$m" ] || { echo "bench-options: $m is missing: run scripts/setup.sh and scripts/fetch-model.sh base" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "bench-options: $bin is missing: cargo build --release" >&2; exit 2; }

speech="$work/speech-${minutes}min"
if [ ! -s "$speech/speech.wav" ]; then
    python3 scripts/make-speech.py "$speech" --minutes "$minutes"
fi
sox "$speech/speech.wav" -c 2 "$work/stereo.wav" remix 1 1
script="$speech/script.txt"

run() { # label model args...: prints "label seconds wer words"
    local label="$1" model="$2"; shift 2
    local out="$work/out-$label" input="$speech/speech.wav"
    if [[ " $* " == *" --channels split "* ]]; then input="$work/stereo.wav"; fi
    rm -rf "$out"
    local start end
    start=$(date +%s.%N)
    "$bin" transcribe -q -m "var/models/ggml-$model.bin" -t "$threads" --format json,txt -o "$out" "$@" "$input" \
        2> "$work/err-$label" || { echo "bench-options: $label failed:" >&2; tail -5 "$work/err-$label" >&2; return 1; }
    end=$(date +%s.%N)
    local stem txt
    stem=$(basename "$input" .wav)
    txt="$out/$stem.txt"
    if [[ " $* " == *" --channels split "* ]]; then
        python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
print(' '.join(s['text'].strip() for s in d['segments'] if s.get('channel', 0) == 0))" "$out/$stem.json" > "$out/ch0.txt"
        txt="$out/ch0.txt"
    fi
    local score
    score=$(scripts/wer.py "$script" "$txt" | sed -E 's/.*WER ([0-9.]+), ([0-9]+) words.*/\1 \2/')
    echo "$label $(echo "$end - $start" | bc) $score"
}

echo "bench-options: ${minutes} min of speech, $threads threads, $(nproc) cores, $bin"
printf '%-24s %9s %7s %7s %6s\n' option seconds ratio WER words
base_time=""
report() { # label seconds wer words [baseline seconds]
    local ratio="1.00"
    [ -n "${5:-}" ] && ratio=$(printf "%.2f" "$(echo "scale=3; $2 / $5" | bc)")
    printf '%-24s %9.1f %7s %7s %6s\n' "$1" "$2" "$ratio" "$3" "$4"
}
read -r l t w n <<< "$(run default tiny.en)"; report "$l" "$t" "$w" "$n"; base_time=$t
for opt in "greedy:--beam-size 1" "no-vad:--no-vad" "no-fallback:--no-fallback" "best-of-2:--best-of 2" \
           "dtw:--dtw" "split-channels:--channels split" "window-60:--window-seconds 60"; do
    label="${opt%%:*}"; args="${opt#*:}"
    # shellcheck disable=SC2086
    read -r l t w n <<< "$(run "$label" tiny.en $args)"; report "$l" "$t" "$w" "$n" "$base_time"
done
read -r l t w n <<< "$(run base-default base)"; report "$l" "$t" "$w" "$n"; base_b=$t
read -r l t w n <<< "$(run base-auto base --language auto)"; report "$l" "$t" "$w" "$n" "$base_b"
read -r l t w n <<< "$(run base-per-segment base --language auto --language-per-segment)"; report "$l" "$t" "$w" "$n" "$base_b"
