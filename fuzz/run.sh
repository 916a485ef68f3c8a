#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for N seconds each, one after the other, starting
# from the committed seeds, and prints one summary line per target.
#
#   fuzz/run.sh                 # every target, 60 s each
#   fuzz/run.sh 600             # every target, 10 minutes each
#   fuzz/run.sh 30 cookie form  # two targets, 30 s each
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# The seeds in fuzz/seeds/<target>/ are copied to a scratch corpus (fuzz/corpus/<target>/,
# gitignored), which is the only directory libFuzzer writes to, so the seeds stay as written;
# crashes land in fuzz/artifacts/<target>/ (gitignored). fuzz/dicts/<target>.dict, when present,
# is passed as a libFuzzer dictionary (keywords, separators, boundary numbers).
# Targets run one after the other, each in a single libFuzzer process (libFuzzer's default;
# `-jobs=1 -workers=1` would fork a worker whose output goes to fuzz-0.log instead).
# Built the cargo-fuzz default way: optimised, with debug assertions and overflow checks on.
# Set CARGO_TARGET_DIR to build elsewhere. Logs: fuzz/corpus/logs/<target>.log.
# Exit status: 0 when no target crashed, 1 otherwise.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

seconds="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(cookie form return_url config state_file)
fi

logs="$here/corpus/logs"
mkdir -p "$logs"
summary=()
failed=0

for t in "${targets[@]}"; do
    corpus="$here/corpus/$t"
    mkdir -p "$corpus" "$here/artifacts/$t"
    cp -n "$here/seeds/$t/"* "$corpus/" 2>/dev/null || true
    log="$logs/$t.log"
    echo "== $t: ${seconds}s from seeds/$t (log: $log)" >&2
    touch "$log.start"
    start=$(date +%s)
    dict=()
    [ -f "$here/dicts/$t.dict" ] && dict=(-dict="$here/dicts/$t.dict")
    cargo +nightly fuzz run "$t" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$here/artifacts/$t/" >"$log" 2>&1
    rc=$?
    elapsed=$(( $(date +%s) - start ))
    # libFuzzer ends with "Done N runs in S second(s)" and, with -print_final_stats=1,
    # "stat::number_of_executed_units: N"; a crash ends the run early without the former.
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    if [ -z "$execs" ]; then
        execs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]\+')
    fi
    if [ -z "$execs" ]; then
        # Crashed before the final stats: the last status line still counts executions.
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    fi
    crashes=$(find "$here/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) -newer "$log.start" 2>/dev/null | wc -l)
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1
    fi
    corpus_size=$(find "$corpus" -type f | wc -l)
    line=$(printf '%-11s seconds=%-5s executions=%-10s crashes=%s corpus=%s exit=%s' "$t" "$elapsed" "${execs:-?}" "$crashes" "$corpus_size" "$rc")
    summary+=("$line")
    echo "$line" >&2
    [ "$crashes" -ne 0 ] && failed=1
done

echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), ${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
