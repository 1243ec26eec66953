#!/usr/bin/env bash
# Regenerates docs/RELIABILITY.md (issue 9): fuzzes every parser of untrusted bytes, runs the
# fault-injection soak and the leak check, and writes their tables with the machine and the
# commit they ran on. Full size takes about 2.5 hours on 2 cores (about 1.5 with
# SIDE_BY_SIDE=1, below):
#   scripts/reliability.sh
# Shorter (the report says what was run): FUZZ_SECS (600 per target), SOAK_SECS (1800),
# LEAK_STUB_JOBS (1000), LEAK_REAL_JOBS (50). Exits non-zero if any part found a problem;
# the report is written either way. `--report-only` writes it again from the last results
# (target/reliability/) without running anything; `--fuzz-again TARGET...` re-fuzzes those
# targets at the current commit (after fixing what they found) and writes the report.
set -uo pipefail
cd "$(dirname "$0")/.."
fuzz_secs="${FUZZ_SECS:-600}"
soak_secs="${SOAK_SECS:-1800}"
stub_jobs="${LEAK_STUB_JOBS:-1000}"
real_jobs="${LEAK_REAL_JOBS:-50}"
# SIDE_BY_SIDE=1: fuzzing (one core) runs while the soak and the leak check run, which
# roughly halves the time on 2 cores; the soak's daemon then competes for the CPU.
side_by_side="${SIDE_BY_SIDE:-0}"
work=target/reliability
mkdir -p "$work" docs

if [ "${1:-}" = "--fuzz-again" ]; then
    # After a fix: fuzz TARGETs again at this commit; their rows in the table are replaced
    # and the earlier ones kept (fuzz-earlier.txt), and the report shows both.
    shift
    scripts/fuzz.sh "$(cat "$work/fuzz.secs")" "$@" >"$work/fuzz-again.txt" 2>>"$work/fuzz.log"
    commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ", uncommitted changes")
    tail -n +2 "$work/fuzz-again.txt" | while IFS= read -r line; do
        t=${line%% *}
        grep "^$t " "$work/fuzz.txt" | sed "s/\$/ (commit $(cat "$work/commit"))/" >>"$work/fuzz-earlier.txt"
        awk -v t="$t" -v row="$line (re-run at commit $commit)" \
            '$1 == t { print row; next } { print }' "$work/fuzz.txt" >"$work/fuzz.txt.new"
        mv "$work/fuzz.txt.new" "$work/fuzz.txt"
    done
    if grep -q CRASH "$work/fuzz.txt"; then echo 1; else echo 0; fi >"$work/fuzz.status"
elif [ "${1:-}" != "--report-only" ]; then
    rm -f "$work/fuzz-earlier.txt"
    git rev-parse --short HEAD >"$work/commit"
    if git diff --quiet HEAD; then : >"$work/dirty"; else echo " with uncommitted changes" >"$work/dirty"; fi
    date -u +%Y-%m-%dT%H:%MZ >"$work/started"
    echo "$side_by_side" >"$work/side_by_side"
    fuzz() {
        scripts/fuzz.sh "$fuzz_secs" >"$work/fuzz.txt" 2>"$work/fuzz.log"
        echo $? >"$work/fuzz.status"
    }
    echo "$fuzz_secs" >"$work/fuzz.secs"
    if [ "$side_by_side" = 1 ]; then
        # Build first, so the two runs below do not build the same crates at once.
        cargo build --locked --tests --examples >&2
        (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build -O >&2)
        fuzz &
        fuzz_pid=$!
    else
        fuzz
    fi
    rm -f "$work/soak.md"
    echo "$soak_secs" >"$work/soak.secs"
    soak_started=$SECONDS
    scripts/soak.sh "$soak_secs" "$work/soak.md" >"$work/soak.log" 2>&1
    echo $? >"$work/soak.status"
    echo $((SECONDS - soak_started)) >"$work/soak.wall"
    [ -s "$work/soak.md" ] || echo "The soak did not finish: see $work/soak.log" >"$work/soak.md"
    scripts/leak-check.sh "$stub_jobs" "$real_jobs" >"$work/leak.md" 2>"$work/leak.log"
    echo $? >"$work/leak.status"
    [ -z "${fuzz_pid:-}" ] || wait "$fuzz_pid"
    date -u +%Y-%m-%dT%H:%MZ >"$work/ended"
fi
started=$(cat "$work/started")
fuzz_status=$(cat "$work/fuzz.status")
fuzz_secs=$(cat "$work/fuzz.secs")
soak_status=$(cat "$work/soak.status")
leak_status=$(cat "$work/leak.status")
soak_secs=$(cat "$work/soak.secs")
side_by_side=$(cat "$work/side_by_side" 2>/dev/null || echo 0)
size="Full size (600 s per fuzz target, a 1800 s soak)."
if [ "$fuzz_secs" -lt 600 ] || [ "$soak_secs" -lt 1800 ]; then
    size="**Shortened run:** $fuzz_secs s per fuzz target and a $soak_secs s soak, not the full 600 s and 1800 s."
fi

order="fuzzing, then the soak, then the leak check, one at a time."
if [ "$side_by_side" = 1 ]; then
    order="fuzzing ran on one core while the soak and then the leak check ran (\`SIDE_BY_SIDE=1\`), so the soak's daemon shared the CPU with it."
fi
verdict() { if [ "$1" -eq 0 ]; then echo "passed"; else echo "**FAILED** (exit $1)"; fi; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
{
    cat <<EOF
# Reliability report

hotfolderd promises that every input is accounted for, exactly once — through half-written
files, crashes, \`kill -9\`, S3 outages, full disks and hostile input. This report is the
evidence, and anyone can regenerate it with one command: \`scripts/reliability.sh\` (about
2.5 hours on 2 cores, 1.5 with \`SIDE_BY_SIDE=1\`; see the script for shorter settings).

- **Run:** $started to $(cat "$work/ended"), commit \`$(cat "$work/commit" 2>/dev/null || git rev-parse --short HEAD)\`$(cat "$work/dirty" 2>/dev/null).
- **Machine:** $(nproc) cores ($cpu), $mem memory, $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -r); CPU only.
- **Size:** $size
- **Order:** $order
- **Results:** fuzzing $(verdict $fuzz_status); soak $(verdict $soak_status); leak check $(verdict $leak_status).

## Fuzzing

Every parser that reads bytes from outside — S3/SNS/EventBridge event bodies, the config
file, CTranslate2 model files, the ggml writer (round trip), the audio probe and decoder,
dataset manifest lines and the trainer's JSON-lines metrics — is a coverage-guided fuzz
target (\`fuzz/\`, cargo-fuzz with libFuzzer and AddressSanitizer, seeded from real samples in
\`fuzz/seeds/\`). A run fails on a crash, a sanitizer report, more than 1 GiB of memory, or one
input taking over 20 s. cargo-fuzz needs nightly-only compiler flags; only the stable
toolchain is installed, so \`RUSTC_BOOTSTRAP=1\` lets stable rustc accept them (chosen over
afl.rs because libFuzzer needs no separate compiler wrapper and cargo-fuzz was seen working
here). The test suite runs each target for 20 s.

$fuzz_secs s per target:

\`\`\`
$(cat "$work/fuzz.txt")
\`\`\`
$(if [ -s "$work/fuzz-earlier.txt" ]; then
    printf '\nRows marked "re-run" were fuzzed again after the fix for what they found (below); their\nearlier results:\n\n```\n%s\n```\n' "$(cat "$work/fuzz-earlier.txt")"
fi)

## Fault-injection soak

\`tests/suite/soak/\` (\`scripts/soak.sh SECONDS\`; the test suite runs it for 2 minutes): the
real daemon — as the unprivileged user \`nobody\` when run as root, so permissions apply —
serves a watched folder and a queue of the S3/SQS emulator (moto) with whisper tiny.en on one
thread. A driver drops files and uploads objects: speech (every file's bytes unique), copies
of earlier content, slow writers, renames from \`.part\`, text and random bytes named \`.wav\`.
An antagonist, one fault at a time at random moments, kills the daemon with \`kill -9\` and
restarts it, kills the emulator and brings it back with its state, makes the output folder
read-only, fills the output disk (a 64 MiB tmpfs), and sends SIGHUP with a changed and with a
broken config. Then every input is reconciled: one journal row each, speech transcribed with
one complete set of outputs made from its own bytes, garbage quarantined with a reason, no
output without an input, no temporary file left, no message left in the queue, and the
audit log equal to the journal's history.

$(cat "$work/soak.md")

The soak took $(cat "$work/soak.wall" 2>/dev/null || echo '?') s in all: its faults, then the wait until the daemon
had worked through the backlog they left (it stops waiting after 10 minutes without progress).

## Leak check

\`examples/leak_check.rs\` (\`scripts/leak-check.sh\`): the daemon in the measuring process runs
jobs in batches; after each batch (and 11 s for idle runtime threads to exit) its resident
set and open file descriptors are sampled. After warm-up both must stay within 8 MiB and 4
descriptors, or the check fails.

$(cat "$work/leak.md")

## Bugs found along the way

- **Fuzzing, audio probe:** a WAV header claiming ~4 billion Hz made the resampler allocate
  over 1 GB. Sample rates outside 1–768 kHz are now a decode error that names the rate;
  regression seed \`fuzz/seeds/audio_probe/regression-oom-huge-rate.seed\` and unit test
  \`pipeline::decode::fuzz_regressions\`.
- **Fuzzing, audio decoder (the 600 s run):** a float WAV whose samples include NaN made the
  resampler's FFT produce NaNs, on which rubato panics. In the daemon the job's worker died and
  the input was retried, then failed, as "worker ended abnormally"; \`hotfolderd transcribe\`
  crashed. Now a sample that is not a finite number stops the decode with an error that
  gives its time and says the data is damaged (the input is quarantined), and finite float
  samples are bounded to ±32 (30 dB over full scale) so that the resampler's sums stay finite.
  Regression seed \`fuzz/seeds/audio_probe/regression-nan-float-pcm.seed\`, unit tests in
  \`pipeline::decode::fuzz_regressions\`.
EOF
} >docs/RELIABILITY.md
echo "wrote docs/RELIABILITY.md (fuzz: $fuzz_status, soak: $soak_status, leak: $leak_status)"
[ $fuzz_status -eq 0 ] && [ $soak_status -eq 0 ] && [ $leak_status -eq 0 ]
