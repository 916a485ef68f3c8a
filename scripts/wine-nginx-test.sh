#!/usr/bin/env bash
# The engine's nginx-facing integration tests as Windows programs under Wine, with the real nginx
# for Windows (scripts/windows-nginx.sh, built once per machine): sign-in through nginx, the Host
# allow-list, reloads, WebSockets cut when a sign-out recycles the workers, clean stops and no
# orphans, a taken port, a data directory under `Zoë Müller` (engine/tests/api/user_paths.rs).
# The api test binary built for Windows holds exactly the modules that make sense there (see
# engine/tests/api/main.rs); this runs all of them but the few skipped below, and prints how many ran.
#
#   scripts/wine-nginx-test.sh              all of them
#   scripts/wine-nginx-test.sh FILTER...    only those matching (libtest filters, e.g. user_paths::)
#
# Wine, its private prefix, the ProcessPrng shim and the cargo settings for x86_64-pc-windows-gnu
# (Debian's Rust with -Zbuild-std, RUNNER=wine) come from scripts/wine-env.sh. nginx.exe is found
# the way the engine finds it on Windows: on PATH (Wine's PATH gets WINEPATH in front).
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests that need what Wine 8 does not do, skipped by name here only (they run on Linux, and on
# Windows in CI). The reason, measured with a mingw probe (a listener, then a second bind from
# another process): Wine answers a bind with SO_REUSEADDR on a port another process listens on with
# WSAEACCES (10013), where Windows lets the same user's socket bind. nginx for Windows relies on
# that: `nginx -t` binds the ports of the running nginx (only WSAEADDRINUSE is forgiven), and a
# reloading master binds them again while its workers listen. So under Wine no config change passes
# `nginx -t`, and a reload (every sign-out has one) fails in the master, which keeps its old workers.
wine_skips=(
    flow::config_change_applies_with_a_reload
    nginx::reload_adds_an_app_without_restarting_the_master
    user_paths::under_zoe_mueller_a_config_change_reloads_and_a_sign_out_recycles_the_workers
    # ...and so a sign-out (or revoking, or a new secret) cannot recycle the workers: the old ones
    # stay, and so does the WebSocket.
    websockets::a_new_secret_closes_the_websocket
    websockets::a_sign_out_cuts_other_websockets_too_and_live_sessions_reconnect
    websockets::revoking_the_session_closes_its_websocket
    websockets::signing_everyone_out_closes_the_websocket
    websockets::signing_out_closes_the_websocket
)

nginx_exe=$(scripts/windows-nginx.sh)

# shellcheck source=scripts/wine-env.sh
source scripts/wine-env.sh

WINEPATH="$(winepath -w "$(dirname "$nginx_exe")" 2>/dev/null)${WINEPATH:+;$WINEPATH}"
export WINEPATH

skip_args=()
for name in "${wine_skips[@]}"; do
    skip_args+=(--skip "$name")
done

log="${CARGO_TARGET_DIR:?scripts/wine-env.sh sets CARGO_TARGET_DIR}/wine-nginx-test.log"
mkdir -p "$(dirname "$log")"
echo "wine-nginx-test: the api tests for x86_64-pc-windows-gnu under Wine; nginx: $nginx_exe" >&2
status=0
/usr/bin/cargo test -Zbuild-std=std,panic_abort --target x86_64-pc-windows-gnu -p simpleotp-engine --test api --locked \
    -- "$@" "${skip_args[@]}" 2>&1 | tee "$log" || status=$?

# libtest's summary: "test result: ok. 34 passed; 0 failed; 0 ignored; 0 measured; 9 filtered out".
summary=$(tr -d '\r' < "$log" | grep -a '^test result:' | tail -n 1 || true)
if [ -z "$summary" ]; then
    echo "wine-nginx-test: no test result (the build or the start failed, exit $status); log: $log" >&2
    exit $((status == 0 ? 1 : status))
fi
count() { sed -n "s/.* \([0-9][0-9]*\) $1.*/\1/p" <<< "$summary"; }
passed=$(count passed)
failed=$(count failed)

# Wine 8 sometimes fails to start a process at all on a loaded machine: CreateProcess answers
# ERROR_INTERNAL_ERROR, "cannot run nginx (…): Internal error. (os error 1359)" (seen once in a
# full run, beside the release build; never on Windows). A test that failed only that way runs
# once more, alone, and the retry is said; any other failure stands.
if [ "$status" -ne 0 ] && [ "$failed" -gt 0 ]; then
    failed_tests=$(tr -d '\r' < "$log" | sed -n '/^failures:$/,/^test result:/s/^    \([a-z_:0-9]*\)$/\1/p' | sort -u)
    only_wine=true
    for name in $failed_tests; do
        section=$(tr -d '\r' < "$log" | sed -n "/^---- $name stdout ----$/,/^---- \|^failures:$/p")
        grep -q "(os error 1359)" <<< "$section" || only_wine=false
    done
    if $only_wine && [ -n "$failed_tests" ]; then
        retried=0
        for name in $failed_tests; do
            echo "wine-nginx-test: $name failed because Wine could not start a process (os error 1359); running it once more" >&2
            again="$log.again"
            /usr/bin/cargo test -Zbuild-std=std,panic_abort --target x86_64-pc-windows-gnu -p simpleotp-engine --test api --locked \
                -- --exact "$name" > "$again" 2>&1 || true
            cat "$again" >> "$log"
            if tr -d '\r' < "$again" | grep -aq '^test result: ok. 1 passed'; then
                retried=$((retried + 1))
            fi
        done
        if [ "$retried" -eq "$(wc -w <<< "$failed_tests")" ]; then
            passed=$((passed + retried))
            failed=0
            status=0
            echo "wine-nginx-test: $retried test(s) passed when run again after Wine's process-start error" >&2
        fi
    fi
fi
echo "wine-nginx-test: $((passed + failed)) nginx-facing integration tests ran as Windows programs under Wine with nginx for Windows: $passed passed, $failed failed; ${#wine_skips[@]} skipped by name (Wine refuses the SO_REUSEADDR binds of nginx -t and reloads, see the script)" >&2
exit "$status"
