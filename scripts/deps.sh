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
#   scripts/deps.sh windows   what the Windows tests under Wine need (scripts/wine-env.sh,
#                          scripts/windows-nginx.sh): Wine, the mingw-w64 compiler, make, perl,
#                          dpkg-dev, and a deb-src entry for Debian's pcre2 source. scripts/test
#                          installs them here, before its background jobs start, so that two of
#                          them never run apt at once (apt's list lock does not wait)
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
    windows) packages=(wine wine64 gcc-mingw-w64-x86-64 make perl dpkg-dev) ;;
    *) echo "usage: $0 run|test|cross|packages|windows" >&2; exit 2 ;;
esac

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi

# The Windows nginx build fetches Debian's pcre2 source: a deb-src entry for the same mirror and
# suites as the binary one (Debian 12's deb822 file), which needs the lists updated.
update_anyway=false
if [ "$1" = windows ] && ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/ \
    && [ -f /etc/apt/sources.list.d/debian.sources ]; then
    echo "Adding /etc/apt/sources.list.d/debian-src.sources (deb-src for Debian's pcre2 source)"
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        | "${sudo[@]}" tee /etc/apt/sources.list.d/debian-src.sources > /dev/null
    update_anyway=true
fi

if [ ${#missing[@]} -gt 0 ] || $update_anyway; then
    if [ ${#sudo[@]} -gt 0 ] && ! command -v sudo >/dev/null; then
        echo "$0: installing ${missing[*]} needs root (or sudo)" >&2
        exit 1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-remove "${missing[@]}"
fi

if [ "$1" = cross ] || [ "$1" = packages ] || [ "$1" = windows ]; then
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
