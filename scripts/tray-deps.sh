#!/usr/bin/env bash
# Installs what building and testing the tray app (src-tauri/) needs on Debian 12, and only
# what is missing, so it is cheap to call from the test command on every run:
#   - the WebKitGTK/GTK/appindicator development files Tauri v2 builds against on Linux,
#   - Xvfb, D-Bus, GNOME keyring and secret-tool for tests without a desktop session,
#   - WebKitWebDriver (webkit2gtk-driver) and tauri-driver for the end-to-end test,
#   - Debian's Chromium + ChromeDriver, the browser that logs in to the protected app,
#   - nginx, which the engine manages,
#   - xsettingsd, through which the end-to-end test switches GTK's theme at run time (one run
#     takes every screenshot in the light and the dark theme),
#   - openbox and wmctrl: a window manager, so the end-to-end test and the benchmark can close
#     the window as a person does (the close request, WM_DELETE_WINDOW),
#   - zbarimg (zbar-tools) and openssl, with which it reads the "Other devices" QR codes back
#     from the window and checks the CA's fingerprint,
#   - xclip, with which it reads back what the tray's Copy link put on the clipboard,
#   - trayer (a small system tray: the app's icon then sits in it, through appindicator's XEmbed
#     fallback), xdotool and scrot, with which it opens the real tray menu and takes its picture.
#
#   scripts/tray-deps.sh           all of the above
#   scripts/tray-deps.sh --build   only what compiling the tray app (and so its core tests, which
#                                  need no display) needs: the development files, no drivers
set -euo pipefail

build_only=false
[ "${1:-}" != "--build" ] || build_only=true

packages=(
    build-essential pkg-config
    libwebkit2gtk-4.1-dev libjavascriptcoregtk-4.1-dev libsoup-3.0-dev
    libayatana-appindicator3-dev librsvg2-dev libgtk-3-dev libdbus-1-dev
)
if ! $build_only; then
    packages+=(
        xvfb xauth dbus-daemon gnome-keyring libsecret-tools xsettingsd
        webkit2gtk-driver chromium chromium-driver nginx openbox wmctrl
        zbar-tools openssl xclip trayer xdotool scrot xdg-utils
    )
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "tray-deps: installing ${missing[*]}" >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

# tauri-driver: the WebDriver front that starts the app and forwards to WebKitWebDriver.
if ! $build_only && ! command -v tauri-driver >/dev/null 2>&1; then
    echo "tray-deps: installing tauri-driver" >&2
    cargo install tauri-driver --locked
fi
