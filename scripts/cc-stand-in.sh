#!/usr/bin/env bash
# A stand-in C/Objective-C compiler and archiver for scripts/check-targets.sh, never for a build
# that links. On Linux there is no compiler for macOS, yet a build script of a crate in the tray
# app's graph (objc2-exception-helper, through the `cc` crate) compiles a small Objective-C file
# for the macOS targets. `cargo check` links nothing, so the object only has to exist: this script
# creates each output file named on its command line, empty, and compiles nothing.
#
#   as a compiler:  ... -o OUT | -oOUT | -Fo OUT | -FoOUT | /FoOUT ...   creates OUT
#                   -E (the `cc` crate asks which compiler family this is)  prints nothing
#   as an archiver: `cc-stand-in.sh ar ARGS...` (AR_<target> points at a wrapper that passes "ar"):
#                   lib.exe's -out:FILE, else the first argument ending in .a or .lib, is created
set -euo pipefail

touch_output() {
    mkdir -p "$(dirname "$1")"
    : > "$1"
}

if [ "${1:-}" = ar ]; then
    shift
    for arg in "$@"; do
        case "$arg" in
            # lib.exe's form (as the `cc` crate calls it for MSVC targets): -out:FILE
            -out:* | /OUT:*) touch_output "${arg#*:}"; exit 0 ;;
            *.a | *.lib) touch_output "$arg"; exit 0 ;;
        esac
    done
    exit 0
fi

while [ $# -gt 0 ]; do
    case "$1" in
        -o | -Fo | /Fo) [ $# -ge 2 ] && touch_output "$2"; shift ;;
        -Fo?* | /Fo?*) touch_output "${1:3}" ;;
        -o?*) touch_output "${1:2}" ;;
    esac
    shift
done
exit 0
