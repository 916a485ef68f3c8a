#!/usr/bin/env bash
# Builds the Linux packages, the .deb and the .rpm, with the Tauri CLI (one release build serves
# both), inspects them, installs the .deb with apt on this machine, starts the installed app under
# Xvfb with a real Secret Service, checks the installed `simpleotp` command, runs the tray app's
# end-to-end test against the installed binary, then removes the package and checks that nothing
# is left running or installed. The .rpm is not installed on this Debian machine: scripts/rpm-inspect.sh
# reads it with rpm's tools, runs rpm's dependency check against stand-in packages, and installs
# and removes it in a throw-away root. (The AppImage is built only by the release workflow: Tauri
# downloads linuxdeploy for it from GitHub, which these machines cannot reach.) Needs root (apt).
# Part of scripts/test; slow (a release build of the app).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"

fail() { echo "deb-test: FAIL: $*" >&2; exit 1; }
step() { echo "deb-test: $*" >&2; }

if [ "${1:-}" != "--installed" ]; then
    [ "$(id -u)" -eq 0 ] || fail "installing a package needs root"
    "$root/scripts/deps.sh" packages   # rpm's tools, to read the .rpm
    step "building (release) with the Tauri CLI from npm"
    npm ci --no-audit --no-fund --silent
    # The `simpleotp` command with the features the Tauri CLI's build of the app resolves (the app's
    # package selected, tauri/custom-protocol on): built alone (`-p simpleotp-engine`), ~130 of its
    # crates would get other features and be compiled a second time in release.
    cargo build --release --locked -p simpleotp-app -p simpleotp-engine --bin simpleotp --features tauri/custom-protocol
    mkdir -p src-tauri/binaries/linux
    cp "$target/release/simpleotp" src-tauri/binaries/linux/simpleotp
    npx tauri build --bundles deb,rpm
    deb=$(ls -t "$target"/release/bundle/deb/*.deb | head -n1)
    [ -f "$deb" ] || fail "no .deb was built"
    rpm=$(ls -t "$target"/release/bundle/rpm/*.rpm | head -n1)
    [ -f "$rpm" ] || fail "no .rpm was built"
    step "built $deb and $rpm"

    # --- Inspect -----------------------------------------------------------------------------
    info=$(dpkg-deb -I "$deb")
    contents=$(dpkg-deb -c "$deb" | sed 's| \./| |')   # paths without a leading ./
    package=$(dpkg-deb -f "$deb" Package)
    depends=$(dpkg-deb -f "$deb" Depends)
    for dep in "nginx (>= 1.19.5)" libwebkit2gtk-4.1-0 libgtk-3-0 libayatana-appindicator3-1; do
        grep -qF "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
    done
    for file in usr/bin/simpleotp-app usr/bin/simpleotp usr/share/applications/SimpleOTP.desktop \
                usr/share/icons/hicolor/128x128/apps/simpleotp-app.png usr/lib/simpleotp/simpleotp-trust \
                usr/share/polkit-1/actions/org.simpleotp.SimpleOTP.trust.policy; do
        grep -qF " $file" <<<"$contents" || fail "the package lacks $file"
    done
    ! grep -q "nginx" <<<"$(grep ' usr/bin/' <<<"$contents")" || fail "the .deb must use the system nginx, not ship one"
    desktop=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards '*usr/share/applications/SimpleOTP.desktop')
    grep -q '^Exec=simpleotp-app' <<<"$desktop" || fail "desktop entry: $desktop"
    grep -q '^Icon=simpleotp-app' <<<"$desktop" || fail "desktop entry has no icon: $desktop"
    step "package $package, depends: $depends"
    grep -E "Package|Version|Architecture|Installed-Size" <<<"$info" >&2

    # The .rpm, from the same build: inspected, dependency-checked and installed into a throw-away
    # root by rpm itself (scripts/rpm-inspect.sh); never installed on this Debian system.
    "$root/scripts/rpm-inspect.sh" "$rpm" || fail "the .rpm is not as expected"
    [ "$(rpm -qp --qf '%{NAME} %{VERSION}' "$rpm")" = "$package $(dpkg-deb -f "$deb" Version)" ] \
        || fail "the .rpm ($(rpm -qp --qf '%{NAME} %{VERSION}' "$rpm")) and the .deb ($package) differ in name or version"

    # --- Install -----------------------------------------------------------------------------
    step "installing with apt"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
    [ -x /usr/bin/simpleotp-app ] && [ -x /usr/bin/simpleotp ] || fail "binaries not installed"
    # The first line (a second one appears when a newer release exists; this machine is offline).
    version=$(/usr/bin/simpleotp --version | head -n1)
    [ "$version" = "simpleotp $(dpkg-deb -f "$deb" Version)" ] || fail "simpleotp --version said: $version"
    step "installed: $version"
    # The root script that "Trust on this computer" runs through pkexec: root's, executable, not
    # writable by anyone else; and the polkit action that names it.
    [ "$(stat -c '%U %a' /usr/lib/simpleotp/simpleotp-trust)" = "root 755" ] \
        || fail "simpleotp-trust is $(stat -c '%U %a' /usr/lib/simpleotp/simpleotp-trust), not root 755"
    grep -q '<annotate key="org.freedesktop.policykit.exec.path">/usr/lib/simpleotp/simpleotp-trust</annotate>' \
        /usr/share/polkit-1/actions/org.simpleotp.SimpleOTP.trust.policy || fail "the polkit action does not name the script"
    # pkaction asks polkitd over the system bus; where none runs (a container), it cannot answer.
    if command -v pkaction >/dev/null && pkaction >/dev/null 2>&1; then
        pkaction --action-id org.simpleotp.SimpleOTP.trust --verbose | grep -q "SimpleOTP" || fail "polkit does not know the action"
    else
        step "polkitd is not running here: the action file is checked, not polkit's reading of it"
    fi

    # --- Run ---------------------------------------------------------------------------------
    status=0
    "$root/scripts/with-keyring.sh" "$0" --installed || status=$?

    # --- Remove ------------------------------------------------------------------------------
    step "removing $package"
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "$package" >/dev/null
    [ ! -e /usr/bin/simpleotp-app ] && [ ! -e /usr/bin/simpleotp ] || fail "files left after removal"
    ! dpkg -s "$package" 2>/dev/null | grep -q "Status: install ok installed" || fail "still installed"
    ! pgrep -f /usr/bin/simpleotp-app >/dev/null || fail "simpleotp-app still running after removal"
    [ $status -eq 0 ] || fail "the installed app did not run as expected"
    step "ok"
    exit 0
fi

# --- Inside a fresh D-Bus session with a throw-away keyring: run the installed app ----------
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
export HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_DATA_HOME="$home/.local/share"
log="$home/app.log"
xvfb-run -a -s "-screen 0 1280x900x24" /usr/bin/simpleotp-app >"$log" 2>&1 &
runner=$!
app_pid=""
for _ in $(seq 100); do
    app_pid=$(pgrep -f '^/usr/bin/simpleotp-app' | head -n1 || true)
    [ -n "$app_pid" ] && break
    sleep 0.1
done
[ -n "$app_pid" ] || { cat "$log" >&2; fail "the installed app did not start"; }
sleep 5
kill -0 "$app_pid" 2>/dev/null || { cat "$log" >&2; fail "the installed app exited within 5 s"; }
# First run: no secret yet, so the wizard window is open and protection is not running.
grep -qi "panic" "$log" && { cat "$log" >&2; fail "the app panicked"; }
step "the installed app runs (pid $app_pid); stopping it with SIGTERM"
kill -TERM "$app_pid"
for _ in $(seq 100); do
    kill -0 "$app_pid" 2>/dev/null || break
    sleep 0.1
done
! kill -0 "$app_pid" 2>/dev/null || fail "the app did not stop on SIGTERM"
wait "$runner" 2>/dev/null || true
! pgrep -f /usr/bin/simpleotp-app >/dev/null || fail "an app process is left"
step "stopped cleanly"

# The whole end-to-end test against the installed binary: wizard, keychain, an app protected
# through the system nginx, login in Chromium, sessions, launch at login from the installed
# location (/usr/bin/simpleotp-app in the autostart entry), Quit, SIGTERM.
step "end-to-end test against the installed app"
SIMPLEOTP_APP_BIN=/usr/bin/simpleotp-app SCREENSHOT_DIR="$home/screenshots" \
    xvfb-run -a -s "-screen 0 1280x900x24" node "$root/scripts/e2e-tray.mjs" || fail "the end-to-end test failed on the installed app"
! pgrep -f /usr/bin/simpleotp-app >/dev/null || fail "an app process is left after the end-to-end test"
step "the installed app passes the end-to-end test"
