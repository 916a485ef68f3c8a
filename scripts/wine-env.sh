# shellcheck shell=bash
# Wine for running the engine's Windows builds here: `source scripts/wine-env.sh` from the
# repository's root (scripts/wine-test.sh and scripts/wine-nginx-test.sh do), then run
#
#   /usr/bin/cargo test -Zbuild-std=std,panic_abort --target x86_64-pc-windows-gnu -p simpleotp-engine --locked ...
#
# and cargo builds the tests as Windows programs and runs each under Wine.
#
# What it does (each part only when missing, so a second source costs well under a second):
# - installs wine, wine64 and gcc-mingw-w64-x86-64 (apt, as root or with sudo) and Debian's Rust
#   1.96 with its std sources (`scripts/deps.sh cross`): -Zbuild-std builds std for the target,
#   as scripts/check-targets.sh does, since rustup's std for windows-gnu cannot be fetched here;
# - creates a private Wine prefix outside the repository (never the user's ~/.wine);
# - builds scripts/wine/bcryptprimitives.c, a stand-in for the bcryptprimitives.dll that Wine 8
#   lacks and Rust's std needs (ProcessPrng), with mingw into the prefix's system32 (never into the
#   repository).
#
# What it exports (the interface; nothing else is meant to be used):
#   WINEPREFIX       ${SIMPLEOTP_WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/simpleotp/wine}
#   WINEDEBUG=-all   Wine's own chatter off
#   WINEDLLOVERRIDES mscoree and mshtml off: no Mono/Gecko installer prompt when the prefix is made
#   RUSTC_BOOTSTRAP=1, RUSTC=/usr/bin/rustc, CARGO=/usr/bin/cargo   Debian's Rust, -Zbuild-std allowed
#   CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
#   CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
#   CARGO_TARGET_DIR ${SIMPLEOTP_WINE_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/wine}, absolute: a
#                    target dir of its own (another compiler and target than the native build, and
#                    no wait for the native build's lock)
# and unsets RUSTC_WRAPPER and RUSTC_WORKSPACE_WRAPPER (a rustup clippy-driver cannot compile for
# Debian's std).
#
# Sourced by scripts that run `set -euo pipefail`; any failure here ends the sourcing script.

_wine_env_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

_wine_env_install() {
    local missing=() package sudo=()
    for package in wine wine64 gcc-mingw-w64-x86-64; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo > /dev/null || { echo "wine-env: installing ${missing[*]} needs root (or sudo)" >&2; return 1; }
            sudo=(sudo)
        fi
        echo "wine-env: installing ${missing[*]}" >&2
        # scripts/test runs this in the background beside steps that use apt: wait for its locks.
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
    fi
    "$_wine_env_root/scripts/deps.sh" cross
}

_wine_env_install

export WINEPREFIX="${SIMPLEOTP_WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/simpleotp/wine}"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
CARGO_TARGET_DIR="${SIMPLEOTP_WINE_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/wine}"
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$_wine_env_root/$CARGO_TARGET_DIR" ;; esac
export CARGO_TARGET_DIR
unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER

# ---- the prefix and the ProcessPrng stand-in, one sourcing script at a time (scripts/test starts
# two in the background at once)
_wine_env_prefix() {
    local system32="$WINEPREFIX/drive_c/windows/system32" dll source def
    dll="$system32/bcryptprimitives.dll"
    source="$_wine_env_root/scripts/wine/bcryptprimitives.c"
    def="$_wine_env_root/scripts/wine/bcryptprimitives.def"
    mkdir -p "$(dirname "$WINEPREFIX")"
    (
        flock 9
        if [ ! -f "$WINEPREFIX/system.reg" ]; then
            echo "wine-env: creating the Wine prefix $WINEPREFIX (a few seconds; a warning about wine32 is harmless)" >&2
            wineboot --init > /dev/null 2>&1 || { echo "wine-env: wineboot --init failed" >&2; exit 1; }
            wineserver --wait
        fi
        if [ ! -f "$dll" ] || [ "$source" -nt "$dll" ] || [ "$def" -nt "$dll" ]; then
            echo "wine-env: building the ProcessPrng stand-in into $dll" >&2
            x86_64-w64-mingw32-gcc -shared -O2 -s -o "$dll.tmp" "$source" "$def" -lbcrypt
            mv -f "$dll.tmp" "$dll"
        fi
    ) 9> "$WINEPREFIX.lock"
}

_wine_env_prefix
unset -f _wine_env_install _wine_env_prefix
unset _wine_env_root
