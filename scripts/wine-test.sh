#!/usr/bin/env bash
# The engine's library tests (unit tests and properties: config, rendering, TOTP, sessions, the
# limiter, redirects, the protocol, QR codes, the CA, state, fsutil's atomic writes and owner-only
# ACLs, the secret file store, the Credential Manager store, ...) built for x86_64-pc-windows-gnu
# and run as Windows programs under Wine. Prints how many ran, passed and were skipped.
#
#   scripts/wine-test.sh                 the lib tests
#   scripts/wine-test.sh ARGS...         extra cargo arguments before `--`, libtest's after it,
#                                        e.g. `--test api -- user_paths::` or `-- secret::`
#
# Wine, its private prefix, the ProcessPrng stand-in and the cargo settings (Debian's Rust with
# -Zbuild-std, RUNNER=wine, target dir target/wine) come from scripts/wine-env.sh.
#
# Skips happen inside the tests, by name, each printing "skipped: <test>: <reason>"
# (engine/src/fsutil.rs, mod testing): what Wine 8 does not do, only when the test runs under Wine
# (found out at run time from ntdll's wine_get_version), and checks that need openssl where it is
# not installed (Windows). This script lists and counts those lines; libtest counts the skipped
# tests as passed.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/wine-env.sh
source scripts/wine-env.sh
# The lib tests check that they detect Wine exactly when they run under it (fsutil::testing).
export SIMPLEOTP_UNDER_WINE=1

# Cargo's arguments, then libtest's: `--nocapture` so the tests' skip lines reach the log.
cargo_args=()
test_args=()
seen_separator=false
for arg in "$@"; do
    if ! $seen_separator && [ "$arg" = "--" ]; then
        seen_separator=true
    elif $seen_separator; then
        test_args+=("$arg")
    else
        cargo_args+=("$arg")
    fi
done

log="$CARGO_TARGET_DIR/wine-test.log"
mkdir -p "$CARGO_TARGET_DIR"
echo "wine-test: the engine's lib tests for x86_64-pc-windows-gnu under Wine (target dir $CARGO_TARGET_DIR)" >&2
status=0
/usr/bin/cargo test -Zbuild-std=std,panic_abort --target x86_64-pc-windows-gnu -p simpleotp-engine --lib --locked \
    "${cargo_args[@]}" -- --nocapture "${test_args[@]}" 2>&1 | tee "$log" || status=$?

# libtest's summaries, one per test binary: "test result: ok. 150 passed; 0 failed; 0 ignored; ...".
summaries=$(tr -d '\r' < "$log" | grep -a '^test result:' || true)
if [ -z "$summaries" ]; then
    echo "wine-test: no test result (the build or the start failed, exit $status); log: $log" >&2
    exit $((status == 0 ? 1 : status))
fi
sum() { sed -n "s/.* \([0-9][0-9]*\) $1.*/\1/p" <<< "$summaries" | awk '{ n += $1 } END { print n + 0 }'; }
passed=$(sum passed)
failed=$(sum failed)
ignored=$(sum ignored)
skips=$(tr -d '\r' < "$log" | grep -a '^skipped: ' | sort -u || true)
skipped=0
if [ -n "$skips" ]; then
    skipped=$(wc -l <<< "$skips")
    sed 's/^/wine-test: /' <<< "$skips" >&2
fi
echo "wine-test: $((passed + failed)) engine tests ran as Windows programs under Wine: $((passed - skipped)) passed, $skipped skipped (listed above), $failed failed; $ignored ignored" >&2
exit "$status"
