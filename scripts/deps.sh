#!/usr/bin/env bash
# Installs the Debian packages SimpleOTP needs, only those that are missing.
#
#   scripts/deps.sh run    what `simpleotp` needs to run: nginx
#   scripts/deps.sh test   everything the test suite uses: nginx, Chromium + chromedriver,
#                          a Secret Service (gnome-keyring on a private D-Bus), the build
#                          headers the keyring crate links against, and Node.js with the npm
#                          packages of package-lock.json (axe-core for the accessibility checks)
#   scripts/deps.sh cross  what scripts/check-targets.sh needs: Debian's Rust 1.96 with its std
#                          sources and its clippy (rustc-web, cargo-web, rust-web-src,
#                          rust-web-clippy), installed beside a rustup toolchain, not instead
#   scripts/deps.sh packages  what scripts/deb-test.sh needs to read the .rpm it builds beside the
#                          .deb (scripts/rpm-inspect.sh): rpm (rpm -qp, rpmbuild), rpm2cpio, cpio
#
# Needs root or sudo. Safe to run again: it does nothing when all is installed.
set -euo pipefail

case "${1:-}" in
    run) packages=(nginx ca-certificates pkg-config libdbus-1-dev) ;;
    test) packages=(nginx ca-certificates pkg-config libdbus-1-dev chromium chromium-driver
                    dbus dbus-daemon gnome-keyring libsecret-tools procps wrk faketime
                    libnss3-tools curl openssl iproute2 util-linux nodejs) ;;
    # They conflict with Debian's own `rustup` package (not with rustup installed from
    # rustup.rs): apt-get runs with --no-remove below, so it fails rather than remove it.
    cross) packages=(rustc-web cargo-web rust-web-src rust-web-clippy) ;;
    packages) packages=(rpm rpm2cpio cpio) ;;
    *) echo "usage: $0 run|test|cross|packages" >&2; exit 2 ;;
esac

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "$0: installing ${missing[*]} needs root (or sudo)" >&2; exit 1; }
        sudo=(sudo)
    fi
    echo "Installing: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-remove "${missing[@]}"
fi

if [ "$1" = cross ] || [ "$1" = packages ]; then
    exit 0
fi
if ! command -v cargo >/dev/null; then
    echo "$0: cargo (Rust 1.89 or newer) is needed; install it from https://rustup.rs" >&2
    exit 1
fi
if [ "$1" = test ]; then
    for tool in fmt clippy; do
        if ! cargo "$tool" --version >/dev/null 2>&1; then
            echo "$0: the tests' gates need cargo $tool: rustup component add $([ $tool = fmt ] && echo rustfmt || echo clippy)" >&2
            exit 1
        fi
    done
fi
if [ "$1" = test ]; then
    # Debian's nodejs comes without npm (it is its own package); NodeSource's has it built in.
    command -v npm >/dev/null || { echo "$0: npm is needed (apt-get install npm)" >&2; exit 1; }
    # The browser tests read node_modules/axe-core; installed again only when the lock changed.
    cd "$(dirname "$0")/.."
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --silent
    fi
fi
