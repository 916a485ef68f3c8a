#!/usr/bin/env bash
# The nginx the Linux AppImage carries (the .deb and the .rpm use the distribution's instead):
#
#   nginx-bundle/build-linux.sh                            # this machine's arch
#   nginx-bundle/build-linux.sh x86_64-unknown-linux-gnu   # or aarch64-unknown-linux-gnu, on such a machine
#
# builds it with build-static.sh (the macOS recipe: pinned, SHA-256-checked sources of nginx,
# zlib, PCRE2 and OpenSSL, linked statically; only glibc and libcrypt are loaded at run time) and
# writes what src-tauri/tauri.appimage.conf.json maps into the AppImage:
#
#   src-tauri/binaries/appimage/nginx              → usr/bin/nginx, next to the app's executable,
#                                                    where the engine looks first
#   src-tauri/binaries/appimage/nginx-licenses/    → usr/share/doc/simpleotp/nginx-licenses/
#
# Not a Tauri externalBin: that would put nginx into the .deb and the .rpm too, built by the same
# `tauri build`. Build it on the oldest distribution the AppImage is for (glibc runs programs built
# against an older glibc, not newer ones): the release workflow uses its ubuntu-22.04 runner.
# It downloads from nginx.org and GitHub, so it runs in the release workflow, not in scripts/test.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

[ "$(uname -s)" = Linux ] || { echo "build-linux.sh: needs Linux (on macOS: build-macos.sh)" >&2; exit 1; }
if [ $# -eq 0 ]; then
    set -- "$(uname -m)-unknown-linux-gnu"
fi
[ $# -eq 1 ] || { echo "build-linux.sh: one target at a time (an AppImage is built per arch)" >&2; exit 2; }
triple=$1
case "$triple" in
    x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) ;;
    *) echo "build-linux.sh: '$triple' is not a Linux target (x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu)" >&2; exit 2 ;;
esac

out=${OUT_DIR:-$root/src-tauri/binaries/appimage}
OUT_DIR=$out "$here/build-static.sh" "$triple"
# The name the AppImage config maps, the same on every arch (the config is not per arch).
mv -f "$out/nginx-$triple" "$out/nginx"
echo "build-linux.sh: wrote $out/nginx and $out/nginx-licenses/" >&2
