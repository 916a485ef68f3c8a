#!/usr/bin/env bash
# The tray app's tests: the unit tests (tray menu, paths) and every command against the real
# engine, nginx and a throw-away GNOME keyring; then, unless --unit-only, the end-to-end test.
# The unit tests compile with the tray app's own features (`cargo test -p`); the end-to-end test
# uses the workspace's debug build (scripts/debug-cargo.sh, what scripts/test builds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
"$root/scripts/tray-deps.sh"
"$root/scripts/with-keyring.sh" cargo test -p simpleotp-app
if [ "${1:-}" != "--unit-only" ]; then
    # One run takes the screenshots in the light and the dark theme.
    "$root/scripts/e2e-tray.sh"
fi
