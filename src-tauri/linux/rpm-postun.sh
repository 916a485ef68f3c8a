#!/bin/sh
# The .rpm's %postun. rpm removes exactly what a package lists, and the packages Tauri builds
# (with the rpm-rs crate) list files but no directories, so /usr/lib/simpleotp, which only the
# trust script lives in, would stay behind, empty, after `rpm -e`/`dnf remove`. $1 is how many
# copies of the package remain: 0 on removal, 1 after an upgrade (when the script is back).
if [ "$1" -eq 0 ]; then
    rmdir /usr/lib/simpleotp 2>/dev/null || :
fi
