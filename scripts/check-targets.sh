#!/usr/bin/env bash
# Type-checks the engine for the other desktop platforms from Linux, so Windows- and
# macOS-only code (cfg-gated ACLs, Job Objects, the macOS watchdog) cannot rot unnoticed.
# Nothing is linked or run: `cargo check` with the standard library built from source, using
# Debian's Rust (packages rustc-web, cargo-web, rust-web-src), which ships the std sources.
# Not part of scripts/test (a cold check takes several minutes per target).
#
#   scripts/check-targets.sh                     both targets
#   scripts/check-targets.sh x86_64-pc-windows-msvc   only the ones named
#
# CARGO_TARGET_DIR defaults to target/check-targets, apart from the native build.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
    echo "needs Debian's Rust with its std sources: apt-get install -y rustc-web cargo-web rust-web-src" >&2
    exit 1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(x86_64-pc-windows-msvc aarch64-apple-darwin)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/check-targets}"
for target in "${targets[@]}"; do
    echo "== simpleotp-engine for $target"
    RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo check -Zbuild-std=std,panic_abort \
        --target "$target" -p simpleotp-engine --locked
done
