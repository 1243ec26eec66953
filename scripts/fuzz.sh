#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of untrusted bytes (fuzz/, cargo-fuzz + libFuzzer
# with AddressSanitizer). Only the stable toolchain is installed, and cargo-fuzz needs
# nightly-only flags (-Zsanitizer): RUSTC_BOOTSTRAP=1 lets stable rustc accept them.
#   scripts/fuzz.sh [--dev] [SECONDS per target, default 20] [TARGET...]
# --dev builds without optimisation: the build takes about half as long (CI's smoke uses it:
# seeds and a short exploration), but each run is ~20x slower; real fuzzing leaves it out.
# Seeds (real samples) are in fuzz/seeds/TARGET; the growing corpus in fuzz/corpus/TARGET.
# A crash stops with non-zero status; its input is in fuzz/artifacts/TARGET/ — make it a
# regression test, fix it, and commit the input to fuzz/seeds/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=-O
if [ "${1:-}" = "--dev" ]; then
    profile=--dev
    shift
fi
secs="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(s3_event config ct2_reader ggml_roundtrip audio_probe manifest_lines trainer_metrics torch_checkpoint)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked >&2
fi
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build "$profile" >&2)
echo "target            seconds  runs        corpus  result"
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    started=$SECONDS
    log="fuzz/target/$t.log"
    # -rss_limit_mb: a hostile size that allocates gigabytes is a finding, not a slow run.
    if (cd fuzz && cargo fuzz run "$profile" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=20 -max_len=65536 \
        -print_final_stats=1) >"$log" 2>&1; then
        result=ok
    else
        result="CRASH (see $log, fuzz/artifacts/$t/)"
        status=1
    fi
    runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    # The seconds it really ran: a crash stops libFuzzer early.
    printf '%-17s %7s  %-10s  %6s  %s\n' "$t" "$((SECONDS - started))" "$runs" "$corpus" "$result"
done
exit $status
