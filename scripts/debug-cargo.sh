#!/usr/bin/env bash
# The one debug build behind scripts/test, the tray e2e and the bench smoke, linted by clippy while
# it compiles.
#
#   scripts/debug-cargo.sh build         every target of the workspace: libs, bins, tests, benches
#   scripts/debug-cargo.sh test [ARGS]   `cargo test --workspace ARGS` on that build (nothing rebuilt)
#
# Why one script for both:
# - One feature resolution. Cargo resolves features per invocation: `cargo build -p simpleotp-app`
#   alone turns on fewer features of hyper, futures-util and getrandom than the tests'
#   dev-dependencies do, so the e2e's build recompiled ~140 crates the tests had just compiled (and
#   the bench smoke's `-p simpleotp-engine -p simpleotp-bench` ~120 more). Building and testing the
#   whole workspace in every step gives every step the same compiled crates.
# - The clippy gate without a second compile of every dependency. `cargo clippy --workspace
#   --all-targets` type-checks all ~750 dependencies on its own (in "check" mode, which cannot share
#   the test build's artifacts: 5 minutes of a cold run on two cores). Here clippy-driver is the
#   compiler of our own crates only (RUSTC_WORKSPACE_WRAPPER, the mechanism `cargo clippy` itself
#   uses; scripts/clippy-rustc.sh adds `-D warnings`), so the same lints run on the same targets
#   (lib, bins, tests, benches) while the dependencies are compiled once, normally.
#   `[workspace.lints]` in Cargo.toml applies as with `cargo clippy`.
#
# A plain `cargo test` also works; it recompiles only our three crates (another compiler wrapper).
set -euo pipefail
cd "$(dirname "$0")/.."

clippy_driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
if [ -z "$clippy_driver" ]; then
    echo "$0: clippy-driver is missing: rustup component add clippy" >&2
    exit 1
fi
export SIMPLEOTP_CLIPPY_DRIVER="$clippy_driver"
export RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/clippy-rustc.sh"

subcommand=${1:-}
[ $# -eq 0 ] || shift
case "$subcommand" in
    build) exec cargo build --workspace --all-targets --locked "$@" ;;
    test) exec cargo test --workspace --locked "$@" ;;
    *)
        echo "usage: $0 build [CARGO ARGS] | test [CARGO TEST ARGS]" >&2
        exit 2
        ;;
esac
