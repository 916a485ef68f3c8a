#!/usr/bin/env bash
# Lints the engine and the tray app for the other desktop platforms from Linux, so Windows- and
# macOS-only code (cfg-gated ACLs, Job Objects, the macOS watchdog, the tray's platform bits)
# cannot rot unnoticed. Part of the full `scripts/test` run (and so of CI).
#
#   scripts/check-targets.sh                          x86_64-pc-windows-msvc, aarch64-apple-darwin,
#                                                     x86_64-apple-darwin
#   scripts/check-targets.sh x86_64-pc-windows-msvc   only the targets named
#
# How: the standard library for these targets cannot be downloaded here, but Debian's Rust 1.96
# (packages rustc-web, cargo-web, rust-web-src) ships the std sources, so `-Zbuild-std` builds std
# from source for each target (RUSTC_BOOTSTRAP=1 unlocks the unstable flag on this stable compiler).
# Debian's clippy of the same release (rust-web-clippy) then lints our crates, lib and bins, with
# `-D warnings` (a rustup toolchain's clippy cannot be used: it is another compiler than the one
# that builds std here, and a rustup toolchain has no std sources offline). Should
# /usr/bin/cargo-clippy be missing, the fallback is `cargo check` with warnings denied (`-Zwarnings`,
# build.warnings=deny), which still type-checks everything but runs no clippy lint; it says so.
# Nothing is linked or run. All targets go through ONE cargo invocation, so the host artifacts
# (proc macros, build scripts) are built once.
#
# What the build needs that Linux has not:
# - tauri-build wants the sidecar named in externalBin (src-tauri/binaries/nginx-<triple>[.exe]) and
#   the resources folder (src-tauri/binaries/nginx-licenses/): empty placeholders are created where
#   absent and exactly those are removed again on exit; a real file is never touched.
# - objc2-exception-helper (macOS) compiles an Objective-C file with the `cc` crate: CC_<target> and
#   AR_<target> point at scripts/cc-stand-in.sh, which only creates the files named as outputs.
#   ring (the update checks' TLS) is C too: for macOS the same stand-in; for Windows only its
#   archiver (lib.exe) is stood in for.
#   (For Windows, tauri-build preprocesses the app's .rc file with the host's cc; the `cc` crate
#   then warns "GNU compiler is not supported for this target", which is harmless here.)
#
# Only libs and bins: the test targets' dev-dependencies (rustls with aws-lc-sys, for the browser
# tests) compile C for the target, which a stand-in cannot fake and Linux has no compiler for.
#
# Target dir: $CHECK_TARGETS_DIR, by default check-targets/ inside $CARGO_TARGET_DIR (or target/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/deps.sh cross

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(x86_64-pc-windows-msvc aarch64-apple-darwin x86_64-apple-darwin)
fi
# Its own target dir: another compiler than the native build's, and a cargo run of its own must not
# wait for the native build's lock on the same dir (scripts/test runs both at once).
export CARGO_TARGET_DIR="${CHECK_TARGETS_DIR:-${CARGO_TARGET_DIR:-$root/target}/check-targets}"

# ---- placeholders for tauri-build, removed on exit (only what this run created, newest first)
created=()
cleanup() {
    local status=$? i
    for ((i = ${#created[@]} - 1; i >= 0; i--)); do
        if [ -d "${created[i]}" ]; then rmdir "${created[i]}" 2>/dev/null || true; else rm -f "${created[i]}"; fi
    done
    # The last line (scripts/test takes the log's last write as the end of the run).
    echo "check-targets: finished in ${SECONDS}s (exit $status)"
}
trap cleanup EXIT
# scripts/test stops a run it no longer waits for with SIGTERM: exit, so the EXIT trap cleans up.
trap 'exit 143' TERM
trap 'exit 130' INT
create_dir() {
    if [ ! -e "$1" ]; then
        mkdir "$1"
        created+=("$1")
    fi
}
create_dir src-tauri/binaries
create_dir src-tauri/binaries/nginx-licenses
for target in "${targets[@]}"; do
    sidecar="src-tauri/binaries/nginx-$target"
    case "$target" in *windows*) sidecar+=".exe" ;; esac
    if [ ! -e "$sidecar" ]; then
        : > "$sidecar"
        created+=("$sidecar")
    fi
done
# tauri-build reruns when these change (cargo compares mtimes with its last run): placeholders made
# anew each run carry an old date, so a warm run does not redo the tray app's build script.
for path in "${created[@]}"; do touch -d @1 "$path"; done

# ---- the stand-in compiler and archiver for C/Objective-C of other targets (see cc-stand-in.sh)
ar_stand_in="$CARGO_TARGET_DIR/ar-stand-in.sh"
mkdir -p "$CARGO_TARGET_DIR"
printf '#!/bin/sh\nexec "%s" ar "$@"\n' "$root/scripts/cc-stand-in.sh" > "$ar_stand_in"
chmod +x "$ar_stand_in"
for target in "${targets[@]}"; do
    case "$target" in
        *-apple-*)
            export "CC_${target//-/_}=$root/scripts/cc-stand-in.sh"
            export "AR_${target//-/_}=$ar_stand_in"
            ;;
        # ring (rustls's crypto, for the update checks) compiles its C with the host's cc, which
        # does no harm for a check, then archives with lib.exe, which Linux has not.
        *-windows-msvc)
            export "AR_${target//-/_}=$ar_stand_in"
            ;;
    esac
done

target_args=()
for target in "${targets[@]}"; do target_args+=(--target "$target"); done
common=("-Zbuild-std=std,panic_abort" "${target_args[@]}" -p simpleotp-engine -p simpleotp-app --lib --bins --locked)
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo

echo "check-targets: ${targets[*]} (target dir $CARGO_TARGET_DIR)"
if [ -x /usr/bin/cargo-clippy ] && [ -x /usr/bin/clippy-driver ]; then
    echo "check-targets: clippy -D warnings (Debian's rust-web-clippy)"
    # cargo-clippy runs $CARGO with clippy-driver (beside it) as the compiler of our crates.
    /usr/bin/cargo-clippy clippy "${common[@]}" -- -D warnings
else
    echo "check-targets: no rust-web-clippy: cargo check with warnings denied, no clippy lints" >&2
    /usr/bin/cargo check -Zwarnings --config 'build.warnings="deny"' "${common[@]}"
fi
echo "check-targets: ok"
