#!/bin/sh
# The compiler of our own crates in scripts/debug-cargo.sh's build (its RUSTC_WORKSPACE_WRAPPER):
# clippy-driver, which takes cargo's rustc path as its first argument like any wrapper and lints
# while it compiles, with warnings as errors. `-D warnings` is a plain rustc flag here, so the
# gate does not depend on how `cargo clippy` hands its arguments to clippy-driver.
exec "${SIMPLEOTP_CLIPPY_DRIVER:?set by scripts/debug-cargo.sh}" "$@" -D warnings
