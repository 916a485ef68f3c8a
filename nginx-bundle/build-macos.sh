#!/usr/bin/env bash
# Builds the macOS nginx sidecar(s) for the app: a relocatable nginx statically linked against
# PCRE2, zlib and OpenSSL from pinned, SHA-256-checked sources, checked with `otool -L` (only
# /usr/lib/libSystem.B.dylib and system frameworks) and with a real `nginx -t`:
#
#   nginx-bundle/build-macos.sh                                  # this Mac's arch
#   nginx-bundle/build-macos.sh aarch64-apple-darwin             # Apple silicon
#   nginx-bundle/build-macos.sh x86_64-apple-darwin              # Intel (on an Intel Mac/Rosetta 2)
#
# writes src-tauri/binaries/nginx-<triple> and src-tauri/binaries/nginx-licenses/. The recipe is
# build-static.sh (shared with the Linux build an AppImage would use); see README.md.
set -euo pipefail
[ "$(uname -s)" = Darwin ] || { echo "build-macos.sh: needs macOS (on Linux: build-static.sh or linux.sh)" >&2; exit 1; }
for t in "$@"; do
    case "$t" in
        aarch64-apple-darwin | x86_64-apple-darwin) ;;
        *) echo "build-macos.sh: '$t' is not a macOS target (aarch64-apple-darwin, x86_64-apple-darwin)" >&2; exit 2 ;;
    esac
done
exec "$(dirname "${BASH_SOURCE[0]}")/build-static.sh" "$@"
