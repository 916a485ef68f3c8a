#!/usr/bin/env bash
# End-to-end test of the tray app: builds it (debug, scripts/debug-cargo.sh: the build the cargo
# tests use, so after them nothing is rebuilt), then drives the real WebKit webview through
# tauri-driver + WebKitWebDriver and a headless Chromium through chromedriver, under Xvfb, in a
# fresh D-Bus session with a throw-away GNOME keyring (scripts/with-keyring.sh).
# The test itself is scripts/e2e-tray.mjs (Node; its one npm package, axe-core, comes from
# package-lock.json through `npm ci`). It takes every screenshot in the light and the dark theme
# in one run (switching GTK's theme through xsettingsd) and runs axe-core on each screen. With
# SIMPLEOTP_UPDATE_SCREENSHOTS=1 its screenshots replace docs/screenshots/tray-*.png.
#
#     scripts/tray-deps.sh     # once: WebKitGTK, Xvfb, keyring, drivers, Chromium, nginx
#     scripts/e2e-tray.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" != "--inside" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
    # axe-core, pinned by package-lock.json (installed once; `npm ci` replaces node_modules).
    if [ ! -f "$root/node_modules/axe-core/axe.min.js" ]; then
        (cd "$root" && npm ci --no-audit --no-fund --silent)
    fi
    "$root/scripts/debug-cargo.sh" build
    export SIMPLEOTP_APP_BIN="$CARGO_TARGET_DIR/debug/simpleotp-app"
    # Screenshots are always taken; they replace the ones in docs/ only when asked to, as for
    # the engine's browser tests (each run has new ports, times and secrets).
    if [ -n "${SIMPLEOTP_UPDATE_SCREENSHOTS:-}" ]; then
        export SCREENSHOT_DIR="$root/docs/screenshots"
    fi
    exec "$root/scripts/with-keyring.sh" "$0" --inside
fi

# Inside the keyring's D-Bus session (which has no DISPLAY): a private X server for the webview.
for tool in xvfb-run xsettingsd openbox wmctrl tauri-driver WebKitWebDriver chromedriver node zbarimg openssl xclip trayer xdotool scrot; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing; run scripts/tray-deps.sh" >&2; exit 1; }
done
exec xvfb-run -a -s "-screen 0 1280x900x24" node "$root/scripts/e2e-tray.mjs"
