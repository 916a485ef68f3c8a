#!/usr/bin/env bash
# Inspects the .rpm (Fedora, openSUSE) that `tauri build` makes beside the .deb, with rpm's own
# tools. It is never installed on this system: the test machines run Debian, whose rpm keeps a
# database of its own that nothing else uses. What an installation would check first, rpm's
# dependency check, runs against a throw-away database holding stand-in packages (no files) that
# provide what a Fedora or openSUSE system provides; and, as root, rpm installs the package into a
# throw-away directory and removes it again.
#
#   scripts/rpm-inspect.sh [PACKAGE.rpm]   default: the newest in target/release/bundle/rpm/
#
# Called by scripts/deb-test.sh after its release build, and by the release workflow on the .rpm
# it publishes. Needs rpm (with rpmbuild), rpm2cpio and cpio: `scripts/deps.sh packages` installs
# them on Debian. Checks:
#   - the header: name, version (the workspace's, Cargo.toml), release, arch, and the file name the release
#     workflow's updater manifest expects; the payload's digests (rpm -K);
#   - the files: the app, the `simpleotp` command, the desktop entry and icon, the trust script and
#     its polkit action; nothing outside /usr, and no nginx (the distribution's is a dependency);
#   - their modes and owners (rpm --dump): /usr/bin's programs and the trust script root's and
#     0755, the polkit action and the desktop entry 0644, nothing writable by group or others;
#   - Requires: nginx >= NGINX_MIN_VERSION as a real versioned dependency, and the WebKitGTK, GTK
#     and appindicator libraries (by soname: the names Fedora and openSUSE both provide);
#   - the scripts: only the %postun that removes /usr/lib/simpleotp;
#   - the desktop entry's Exec and Icon, read from the payload (rpm2cpio | cpio);
#   - rpm's dependency check: refused with nginx 1.18 (no -e), refused without the libraries,
#     accepted with nginx 1.22 and the libraries;
#   - as root: rpm -i into a throw-away root (the modes on disk, the installed `simpleotp
#     --version`), then rpm -e, which must leave none of its files and no /usr/lib/simpleotp.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"

fail() { echo "rpm-inspect: FAIL: $*" >&2; exit 1; }
step() { echo "rpm-inspect: $*" >&2; }

for tool in rpm rpmbuild rpm2cpio cpio node; do
    command -v "$tool" >/dev/null || fail "$tool is missing (Debian: scripts/deps.sh packages)"
done
if [ $# -gt 0 ]; then
    rpm=$1
else
    # shellcheck disable=SC2012 # Tauri's file names have no spaces or newlines
    rpm=$(ls -t "$target"/release/bundle/rpm/*.rpm 2>/dev/null | head -n1 || true)
fi
[ -f "$rpm" ] || fail "no .rpm to inspect (${rpm:-none found in $target/release/bundle/rpm})"
# shellcheck source=nginx-bundle/versions.env
. "$root/nginx-bundle/versions.env"
# The workspace's version (Cargo.toml's [workspace.package]), the one every package carries.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)
case "$(uname -m)" in
    x86_64) arch=x86_64 ;;
    aarch64) arch=aarch64 ;;
    *) arch=$(uname -m) ;;
esac
step "inspecting $rpm"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The payload as a cpio archive. rpm2cpio (4.18) exits 1 for packages without the payload's size in
# their header, which rpm-rs (Tauri's rpm writer) leaves out; the archive is whole all the same:
# rpm -K checks its digest below, cpio reads it to the end, and its list must be the header's.
rpm2cpio "$rpm" >"$tmp/payload.cpio" || true

# --- Header ----------------------------------------------------------------------------------
header=$(rpm -qp --qf '%{NAME} %{EPOCH} %{VERSION} %{RELEASE} %{ARCH} %{OS}' "$rpm")
# The name is the .deb's package name (Tauri makes both from productName, in kebab case).
case "$header" in
    "simple-otp 0 $version 1 $arch linux" | "simple-otp (none) $version 1 $arch linux") ;;
    *) fail "header says '$header', expected 'simple-otp 0 $version 1 $arch linux' (name epoch version release arch os)" ;;
esac
# The updater manifest (release workflow, job updater-manifest) looks for exactly this name.
[ "$(basename "$rpm")" = "SimpleOTP-$version-1.$arch.rpm" ] || fail "file name $(basename "$rpm"), expected SimpleOTP-$version-1.$arch.rpm"
rpm -K "$rpm" | grep -q 'digests OK' || fail "rpm -K: $(rpm -K "$rpm" 2>&1)"
step "$(rpm -qp --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}, %{SIZE} bytes installed, payload %{PAYLOADCOMPRESSOR}' "$rpm")"

# --- Files, modes, owners --------------------------------------------------------------------
# rpm --dump: path size mtime digest mode owner group isconfig isdoc rdev symlink
dump=$(rpm -qp --dump "$rpm")
mode_of() { awk -v p="$1" '$1 == p { print $5, $6, $7 }' <<<"$dump"; }
expect() { # expect PATH "MODE OWNER GROUP"
    local got
    got=$(mode_of "$1")
    [ -n "$got" ] || fail "the package lacks $1"
    [ "$got" = "$2" ] || fail "$1 is '$got' (mode owner group), expected '$2'"
}
expect /usr/bin/simpleotp-app "0100755 root root"
expect /usr/bin/simpleotp "0100755 root root"
# The script pkexec runs as root: root's and not writable by anyone else, or polkit's prompt
# would guard a program others could change.
expect /usr/lib/simpleotp/simpleotp-trust "0100755 root root"
expect /usr/share/polkit-1/actions/org.simpleotp.SimpleOTP.trust.policy "0100644 root root"
expect /usr/share/applications/SimpleOTP.desktop "0100644 root root"
expect /usr/share/icons/hicolor/128x128/apps/simpleotp-app.png "0100644 root root"
while read -r path _ _ _ mode owner group _; do
    [[ $path == /usr/* ]] || fail "$path is outside /usr"
    [ "$owner $group" = "root root" ] || fail "$path belongs to $owner:$group"
    (( (8#$mode & 8#7022) == 0 )) || fail "$path has mode $mode (writable by others, or set-id)"
done <<<"$dump"
if grep -E '(^|/)nginx[^/]*$' <<<"$(rpm -qpl "$rpm")"; then
    fail "the .rpm ships an nginx; it must depend on the distribution's"
fi
# The payload holds what the header lists.
payload=$(cpio -t --quiet <"$tmp/payload.cpio" | sed 's|^\./|/|' | sort)
[ "$payload" = "$(rpm -qpl "$rpm" | sort)" ] || fail "the payload's files differ from the header's list"
step "files and modes: $(wc -l <<<"$dump") files, all root's, none writable by others, no nginx"

# --- Requires --------------------------------------------------------------------------------
requires=$(rpm -qp --qf '[%{REQUIRENAME}\t%{REQUIREFLAGS:depflags}\t%{REQUIREVERSION}\n]' "$rpm")
# Tauri passes each `depends` entry to rpm as a bare name, so "nginx >= 1.19.5" would become a
# capability of that literal name, which no package provides. A dependency with an operator is
# therefore written as a rich dependency, "(nginx >= 1.19.5)", which rpm and dnf/zypper parse.
grep -qxF "(nginx >= $NGINX_MIN_VERSION)"$'\t\t' <<<"$requires" \
    || fail "no requirement (nginx >= $NGINX_MIN_VERSION); Requires: $(cut -f1 <<<"$requires" | tr '\n' ' ')"
while IFS=$'\t' read -r name _ _; do
    [[ $name == *" "* && $name != "("* ]] && fail "Requires '$name': a name with spaces, which nothing provides (write it as a rich dependency, in parentheses)"
done <<<"$requires"
for lib in 'libwebkit2gtk-4.1.so.0()(64bit)' 'libgtk-3.so.0()(64bit)' 'libayatana-appindicator3.so.1()(64bit)'; do
    grep -qF "$lib" <<<"$requires" || fail "Requires lacks $lib"
done
step "requires: $(cut -f1 <<<"$requires" | grep -v '^rpmlib(' | sort -u | tr '\n' ' ')"

# --- Scripts ---------------------------------------------------------------------------------
scripts=$(rpm -qp --scripts "$rpm")
# rpm-rs names no interpreter ("postuninstall scriptlet:", no "using …"): rpm then runs /bin/sh,
# which rpm-rs adds to Requires (the removal from a throw-away root below runs it).
if [ "$(grep -c 'scriptlet' <<<"$scripts")" -ne 1 ] || ! grep -q '^postuninstall scriptlet' <<<"$scripts"; then
    fail "expected one script, the %postun; rpm --scripts says: $scripts"
fi
grep -q 'rmdir /usr/lib/simpleotp' <<<"$scripts" || fail "the %postun does not remove /usr/lib/simpleotp: $scripts"
step "scripts: the %postun only (removes the empty /usr/lib/simpleotp)"

# --- Desktop entry ---------------------------------------------------------------------------
desktop=$(cpio -i --quiet --to-stdout ./usr/share/applications/SimpleOTP.desktop <"$tmp/payload.cpio")
grep -q '^Exec=simpleotp-app$' <<<"$desktop" || fail "desktop entry: $desktop"
grep -q '^Icon=simpleotp-app$' <<<"$desktop" || fail "desktop entry has no icon: $desktop"
step "desktop entry: Exec=simpleotp-app, Icon=simpleotp-app"

# --- rpm's dependency check against stand-in systems -------------------------------------------
# Debian's rpm refuses to install without --force-debian (it is not Debian's package manager).
debian=()
rpm --help 2>&1 | grep -q -- --force-debian && debian=(--force-debian)
stand_in() { # stand_in NAME VERSION PROVIDES...: a noarch package without files
    local name=$1 ver=$2 p
    shift 2
    {
        printf 'Name: %s\nVersion: %s\nRelease: 1\nSummary: stand-in\nLicense: none\nBuildArch: noarch\n' "$name" "$ver"
        for p in "$@"; do printf 'Provides: %s\n' "$p"; done
        printf '%%description\nA stand-in for the test.\n%%files\n'
    } >"$tmp/$name.spec"
    rpmbuild -bb --quiet --define "_topdir $tmp/build" "$tmp/$name.spec" >/dev/null
}
stand_in base 1 /bin/sh
stand_in old-nginx 1.18.0 'nginx = 1.18.0-1'
stand_in new-nginx 1.22.1 'nginx = 1.22.1-1'
stand_in desktop-libs 1 'libwebkit2gtk-4.1.so.0()(64bit)' 'libgtk-3.so.0()(64bit)' 'libayatana-appindicator3.so.1()(64bit)'
quiet_debian() { grep -v -e 'should not be used directly' -e 'assuming you know what you are doing' || true; }
# dry_run STAND-IN...: rpm -i --test in a fresh database holding those stand-ins; prints rpm's words.
dry_run() {
    local db p status=0
    db=$(mktemp -d "$tmp/db.XXXXXX")
    for p in "$@"; do
        rpm --dbpath "$db" -i --justdb --nodeps "${debian[@]}" "$tmp"/build/RPMS/noarch/"$p"-*.rpm 2>&1 | quiet_debian
    done
    rpm --dbpath "$db" -i --test "${debian[@]}" "$rpm" >"$tmp/said" 2>&1 || status=$?
    quiet_debian <"$tmp/said"
    return $status
}
out=$(dry_run base new-nginx desktop-libs) || fail "rpm refuses the package with nginx 1.22 and the libraries: $out"
out=$(dry_run base old-nginx desktop-libs) && fail "rpm accepts the package with nginx 1.18"
grep -qF "(nginx >= $NGINX_MIN_VERSION) is needed" <<<"$out" || fail "with nginx 1.18 rpm said: $out"
out=$(dry_run base new-nginx) && fail "rpm accepts the package without WebKitGTK, GTK and appindicator"
grep -qF 'libwebkit2gtk-4.1.so.0()(64bit) is needed' <<<"$out" || fail "without the libraries rpm said: $out"
step "rpm's dependency check: accepted with nginx 1.22 and the libraries; refused with nginx 1.18, and without the libraries"

# --- Installed into a throw-away root and removed again --------------------------------------------
# rpm --root lays the payload down under a directory of its own (its database there too) and runs
# the scripts chrooted into it, so it needs root and, in that directory, what the %postun runs:
# this machine's sh and rmdir, with their libraries. Dependencies are left out (--nodeps; checked
# above): only the package's own files, their modes as rpm writes them, and what its removal leaves.
if [ "$(id -u)" -ne 0 ]; then
    step "not root: the installation into a throw-away root is skipped (it chroots to run the %postun)"
    step "ok"
    exit 0
fi
sysroot="$tmp/sysroot"
mkdir -p "$sysroot/bin" "$sysroot/dev"
for program in sh rmdir; do
    binary=$(readlink -f "$(command -v "$program")")
    cp "$binary" "$sysroot/bin/$program"
    for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
        mkdir -p "$sysroot$(dirname "$lib")"
        cp -n "$lib" "$sysroot$lib"
    done
done
# A container without CAP_MKNOD gets a plain file: the %postun only writes to /dev/null.
mknod -m 666 "$sysroot/dev/null" c 1 3 2>/dev/null || : >"$sysroot/dev/null"
rpm_root() { # rpm_root ARGS...: rpm on the throw-away root, without Debian's word about alien
    local status=0
    rpm --root "$sysroot" "$@" >"$tmp/said" 2>&1 || status=$?
    quiet_debian <"$tmp/said" >&2
    return $status
}
rpm_root -i --nodeps "${debian[@]}" "$rpm" || fail "rpm -i into a throw-away root failed"
for file in /usr/bin/simpleotp-app /usr/bin/simpleotp /usr/lib/simpleotp/simpleotp-trust \
            /usr/share/polkit-1/actions/org.simpleotp.SimpleOTP.trust.policy; do
    step "installed: $(stat -c '%U:%G %a' "$sysroot$file") $file"
done
[ "$(stat -c '%U %a' "$sysroot/usr/lib/simpleotp/simpleotp-trust")" = "root 755" ] || fail "the installed trust script is not root's 0755"
[ "$(stat -c '%U %a' "$sysroot/usr/share/polkit-1/actions/org.simpleotp.SimpleOTP.trust.policy")" = "root 644" ] \
    || fail "the installed polkit action is not root's 0644"
said=$("$sysroot/usr/bin/simpleotp" --version | head -n1) || fail "the installed simpleotp does not run"
[ "$said" = "simpleotp $version" ] || fail "the installed simpleotp --version said: $said"
rpm_root -e simple-otp || fail "rpm -e failed"
while read -r path; do
    [ ! -e "$sysroot$path" ] || fail "rpm -e left $path"
done < <(rpm -qpl "$rpm")
[ ! -e "$sysroot/usr/lib/simpleotp" ] || fail "rpm -e left /usr/lib/simpleotp (the %postun did not remove it)"
step "installed into a throw-away root with rpm -i (modes as above, simpleotp --version: $said) and removed with rpm -e: nothing left"
step "ok"
