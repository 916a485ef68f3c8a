#!/usr/bin/env bash
# The signed update of an installed .deb, end to end, as a person's copy meets it:
#
#   1. a throw-away signing key (`tauri signer generate`), standing in for the release key;
#   2. version N: this tree, built into a .deb that trusts that key (the committed config has no
#      key: CONTRIBUTING.md, "Updates: the updater signing key"), signed as a release is
#      (`createUpdaterArtifacts`, TAURI_SIGNING_PRIVATE_KEY);
#   3. version N+1: a copy of this tree with the workspace version bumped, built and signed the
#      same way;
#   4. latest.json for N+1 written by scripts/release-manifest.mjs (which verifies the signature
#      with the key), served with the .deb from a local HTTP server;
#   5. N installed with apt, set up and signed in to by the tray e2e (scripts/e2e-tray.mjs in
#      its update mode: SIMPLEOTP_UPDATE_URL points at the server), which then lets the app find
#      N+1, installs it from Settings (after its one confirmation), and checks that the new
#      version comes back by itself, with the same secret and the browser still signed in;
#   6. the package version is N+1, and the package is removed.
#
# The updater installs a .deb with `pkexec dpkg -i`, else `sudo dpkg -i` (tauri-plugin-updater).
# This test runs as root without polkit's daemon, so `sudo` (installed here) is what runs dpkg; on
# a desktop, pkexec asks for the password. Needs root (apt). Part of scripts/test, after
# scripts/deb-test.sh (its tools are installed by then); reuses the release build's target dir.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# One target dir for both versions' builds (the copy of the tree below builds into it too).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
target=$CARGO_TARGET_DIR

fail() { echo "update-test: FAIL: $*" >&2; exit 1; }
step() { echo "update-test: $*" >&2; }

if [ "${1:-}" = "--installed" ]; then
    shift
    # The update's screenshots replace docs/'s with SIMPLEOTP_UPDATE_SCREENSHOTS=1 (the e2e keeps
    # the other screens it passes on the way in its temporary directory in this mode).
    [ -n "${SIMPLEOTP_UPDATE_SCREENSHOTS:-}" ] && export SCREENSHOT_DIR="$root/docs/screenshots"
    exec xvfb-run -a -s "-screen 0 1280x900x24" env SIMPLEOTP_APP_BIN=/usr/bin/simpleotp-app \
        SIMPLEOTP_E2E_UPDATE_TO="$1" SIMPLEOTP_E2E_UPDATE_URL="$2" node "$root/scripts/e2e-tray.mjs"
fi

[ "$(id -u)" -eq 0 ] || fail "installing a package needs root"
command -v sudo >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null
npm ci --no-audit --no-fund --silent

work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- 1. The throw-away key ---------------------------------------------------------------------
npx tauri signer generate --ci --password "" --write-keys "$work/update.key" >/dev/null
pubkey=$(cat "$work/update.key.pub")
TAURI_SIGNING_PRIVATE_KEY=$(cat "$work/update.key")
export TAURI_SIGNING_PRIVATE_KEY TAURI_SIGNING_PRIVATE_KEY_PASSWORD=""
updater_config="{\"plugins\":{\"updater\":{\"pubkey\":\"$pubkey\"}},\"bundle\":{\"createUpdaterArtifacts\":true}}"

# Builds the .deb of the tree in $1 (the `simpleotp` command inside, as deb-test.sh builds it) and
# prints its path; its signature is beside it (.sig).
build_deb() {
    local tree=$1
    (
        cd "$tree"
        cargo build --release --locked -p simpleotp-app -p simpleotp-engine --bin simpleotp --features tauri/custom-protocol >&2
        mkdir -p src-tauri/binaries/linux
        cp "$target/release/simpleotp" src-tauri/binaries/linux/simpleotp
        npx tauri build --bundles deb --config "$updater_config" >&2
    )
    local deb
    deb=$(ls -t "$target"/release/bundle/deb/*.deb | head -n1)
    [ -f "$deb.sig" ] || fail "the build of $tree signed no update ($deb.sig is missing)"
    echo "$deb"
}

# --- 2. Version N ------------------------------------------------------------------------------
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
next=$(echo "$version" | awk -F. '{ printf "%d.%d.%d", $1, $2, $3 + 1 }')
step "building $version (signed with a throw-away key)"
deb_n=$(build_deb "$root")
mkdir -p "$work/n" && cp "$deb_n" "$work/n/"
deb_n="$work/n/$(basename "$deb_n")"

# --- 3. Version N+1: the same tree, the workspace version bumped --------------------------------
step "building $next from a copy of this tree"
copy="$work/tree"
mkdir -p "$copy"
# The working tree as it is (tracked and new files, not what .gitignore leaves out).
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$copy"
ln -s "$root/node_modules" "$copy/node_modules"
sed -i "0,/^version = \"$version\"/s//version = \"$next\"/" "$copy/Cargo.toml"
(cd "$copy" && cargo update --workspace --offline --quiet)
deb_next=$(build_deb "$copy")
mkdir -p "$work/releases"
cp "$deb_next" "$deb_next.sig" "$work/releases/"
deb_next="$work/releases/$(basename "$deb_next")"
[ "$(dpkg-deb -f "$deb_next" Version)" = "$next" ] || fail "the new package is version $(dpkg-deb -f "$deb_next" Version), not $next"
# The tree's own build again (the copy's build left its binaries in the shared target dir).
rm -rf "$copy"

# --- 4. The release server -----------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
printf 'Test release %s: the update test built it.\n' "$next" > "$work/notes.md"
node scripts/release-manifest.mjs --version "$next" --base-url "$base" --notes-file "$work/notes.md" --pubkey "$pubkey" \
    "linux-x86_64-deb=$deb_next" > "$work/releases/latest.json"
# A manifest signed for another version, or with another key, is refused before publishing.
if node scripts/release-manifest.mjs --version "$version" --base-url "$base" "linux-x86_64-deb=$deb_next" >/dev/null 2>&1; then
    fail "release-manifest.mjs published a package signed for $next as $version"
fi
if node scripts/release-manifest.mjs --version "$next" --base-url "$base" --config src-tauri/tauri.conf.json "linux-x86_64-deb=$deb_next" >/dev/null 2>&1; then
    fail "release-manifest.mjs accepted a release for a config without a key"
fi
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/releases" >"$work/server.log" 2>&1 &
server_pid=$!
serving() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/latest.json" 2>/dev/null; }
for _ in $(seq 50); do serving && break; sleep 0.1; done
serving || fail "the release server did not start"

# --- 5. Install N, let it update itself ------------------------------------------------------------
package=$(dpkg-deb -f "$deb_n" Package)
step "installing $package $version"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb_n" >/dev/null
[ "$(dpkg-query -W -f '${Version}' "$package")" = "$version" ] || fail "$package $version is not installed"
status=0
home=$(mktemp -d)
HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_DATA_HOME="$home/.local/share" \
    "$root/scripts/with-keyring.sh" "$0" --installed "$next" "$base/latest.json" || status=$?
rm -rf "$home"

# --- 6. The package the app installed ---------------------------------------------------------------
installed=$(dpkg-query -W -f '${Version}' "$package" 2>/dev/null || echo none)
grep -q "GET /$(basename "$deb_next")" "$work/server.log" || { cat "$work/server.log" >&2; status=1; step "the app never downloaded the package"; }
step "removing $package"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "$package" >/dev/null
! pgrep -f /usr/bin/simpleotp-app >/dev/null || fail "simpleotp-app still running after removal"
[ $status -eq 0 ] || fail "the installed app did not update as expected"
[ "$installed" = "$next" ] || fail "after the update the package is $installed, not $next"
step "ok: $version updated itself to $next, and came back with its secret and sessions"
