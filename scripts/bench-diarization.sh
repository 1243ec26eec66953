#!/usr/bin/env bash
# Benchmark (not a test) for diarization (issue 22): the diarization error rate on generated
# conversations (scripts/diarization-corpus.py: espeak-ng voices made far apart with sox,
# an overlap, a speaker returning after a long pause) with a 0.25 s collar, and the time
# diarization adds per hour of audio on CPU. Each conversation is transcribed twice in turn,
# without and with --diarize, on the same threads.
#
#   scripts/bench-diarization.sh [COUNT] [THREADS] [-- extra transcribe flags]
#                                           (defaults: 20 conversations, 2 threads)
#
# HOTFOLDERD_BIN picks another build than target/release/hotfolderd. Needs scripts/setup.sh
# run once and the speaker model (scripts/fetch-model.sh speaker BINARY).
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-20}"
threads="${2:-2}"
shift $(($# > 2 ? 2 : $#))
[ "${1:-}" = "--" ] && shift
bin="${HOTFOLDERD_BIN:-target/release/hotfolderd}"
model="${HOTFOLDERD_BENCH_MODEL:-var/models/ggml-tiny.en.bin}"
work=.cache/bench-diarization
for m in "$model" var/models/speaker-campplus.safetensors; do
    [ -s "$m" ] || { echo "bench-diarization: $m is missing: run scripts/setup.sh and scripts/fetch-model.sh speaker $bin" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "bench-diarization: $bin is missing: cargo build --release" >&2; exit 2; }
corpus="$work/corpus-$count"
if [ ! -s "$corpus/conv00.rttm" ]; then
    python3 scripts/diarization-corpus.py "$corpus" --count "$count" --seed 7
fi
rm -rf "$work/plain" "$work/diarized"
mkdir -p "$work/plain" "$work/diarized"
plain=0 diarized=0 audio=0
for wav in "$corpus"/*.wav; do
    a=$(soxi -D "$wav")
    s=$(date +%s.%N)
    "$bin" transcribe -q -m "$model" -t "$threads" --format json -o "$work/plain" "$@" "$wav"
    m=$(date +%s.%N)
    "$bin" transcribe -q -m "$model" -t "$threads" --format json,rttm -o "$work/diarized" --diarize "$@" "$wav"
    e=$(date +%s.%N)
    plain=$(awk "BEGIN{print $plain + $m - $s}")
    diarized=$(awk "BEGIN{print $diarized + $e - $m}")
    audio=$(awk "BEGIN{print $audio + $a}")
done
echo "== diarization error rate (collar 0.25 s) =="
"$bin" score-diarization --reference "$corpus"/*.rttm --hypothesis "$work/diarized"/*.rttm
echo
echo "== time on $(nproc) cores, $threads threads, $(basename "$model") =="
printf 'audio                  %8.1f s in %d conversations\n' "$audio" "$(ls "$corpus"/*.wav | wc -l)"
printf 'transcribe             %8.1f s\n' "$plain"
printf 'transcribe --diarize   %8.1f s  (ratio %.2f)\n' "$diarized" "$(awk "BEGIN{print $diarized / $plain}")"
printf 'diarization adds       %8.1f s per audio hour\n' "$(awk "BEGIN{print ($diarized - $plain) * 3600 / $audio}")"
