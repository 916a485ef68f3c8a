#!/usr/bin/env bash
# Runs its arguments inside a fresh D-Bus session with a running, UNLOCKED GNOME keyring whose
# default ("login") collection exists, e.g.:
#
#     scripts/with-keyring.sh cargo test -p simpleotp-engine
#
# The keyring lives in a throw-away directory, so a developer's real keyring is never touched and
# every run starts from the same state. Needs dbus-run-session (dbus-daemon), gnome-keyring and
# secret-tool (libsecret-tools): `apt-get install dbus-daemon gnome-keyring libsecret-tools`.
#
# Why not simply `echo -n "" | gnome-keyring-daemon --unlock`: with no login keyring on disk, an
# EMPTY password does not create one; the daemon asks a GUI prompter instead, which fails without a
# display, and there is then no default collection at all (keyring reports NoStorageAccess). A
# non-empty password makes the daemon create the login collection, unlocked, and alias it as the
# default collection, which is what the `keyring` crate uses.
set -euo pipefail

if [ "${1:-}" != "--inside-session" ]; then
    if [ $# -eq 0 ]; then
        echo "usage: $0 COMMAND [ARGS...]" >&2
        exit 2
    fi
    for tool in dbus-run-session gnome-keyring-daemon secret-tool; do
        command -v "$tool" >/dev/null || {
            echo "$0: $tool is not installed (apt-get install dbus-daemon gnome-keyring libsecret-tools)" >&2
            exit 1
        }
    done
    keyring_home=$(mktemp -d "${TMPDIR:-/tmp}/simpleotp-keyring.XXXXXX")
    trap 'rm -rf "$keyring_home"' EXIT
    export SIMPLEOTP_KEYRING_HOME="$keyring_home"
    # Not `exec`: the trap must run to remove the throw-away keyring.
    dbus-run-session -- "$0" --inside-session "$@"
    exit $?
fi
shift

# No prompter window may ever appear (it would block a test until someone clicks it).
unset DISPLAY WAYLAND_DISPLAY

# The daemon forks, owns org.freedesktop.secrets on this bus, and exits with the bus.
echo -n "simpleotp-throwaway-keyring" |
    XDG_DATA_HOME="$SIMPLEOTP_KEYRING_HOME" gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
unset SIMPLEOTP_KEYRING_HOME

# The daemon claims its bus name a moment after forking. Wait for it: a client that came earlier
# would make D-Bus activate a second daemon (one that knows nothing of our throw-away directory).
for _ in $(seq 100); do
    if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'; then
        break
    fi
    sleep 0.1
done

# Check that the default collection is usable before running anything that depends on it.
probe="with-keyring-probe-$$"
if ! echo -n probe | timeout 10 secret-tool store --label="$probe" simpleotp-probe "$probe" ||
    [ "$(timeout 10 secret-tool lookup simpleotp-probe "$probe")" != probe ]; then
    echo "$0: the GNOME keyring did not come up unlocked" >&2
    exit 1
fi
timeout 10 secret-tool clear simpleotp-probe "$probe"

# Tells tests that write the app's real keychain entry that this keyring is a throw-away one.
export SIMPLEOTP_THROWAWAY_KEYRING=1
exec "$@"
