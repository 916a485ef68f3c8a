#!/usr/bin/env bash
# Linux: the .deb does not ship nginx, it depends on the distribution's package, so there is
# nothing to fetch. This checks that the nginx SimpleOTP would find here is one it can use:
#
#   nginx-bundle/linux.sh              # the nginx the engine would find (PATH, then /usr/sbin/nginx, …)
#   nginx-bundle/linux.sh /path/nginx  # a given binary (e.g. one meant for an AppImage)
#
# It checks: the binary runs, its version is at least NGINX_MIN_VERSION (the engine passes `-e`,
# new in nginx 1.19.5), it was built with http_auth_request_module, and a real `nginx -t` of a
# configuration using auth_request passes when run the way the engine runs it (smoke-test.sh).
# Exit status 0 when usable, 1 (with the reason and the fix) when not.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.env
. "$here/versions.env"

fail() {
    echo "linux.sh: $*" >&2
    exit 1
}

if [ $# -gt 0 ]; then
    bin=$1
else
    # The order of engine/src/nginx/discover.rs after the bundled copy: PATH, then the usual places.
    bin=$(command -v nginx 2>/dev/null || true)
    if [ -z "$bin" ]; then
        for candidate in /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/nginx/sbin/nginx /usr/local/bin/nginx; do
            if [ -x "$candidate" ]; then
                bin=$candidate
                break
            fi
        done
    fi
    [ -n "$bin" ] || fail "no nginx found on PATH or in /usr/sbin, /usr/local/sbin, /usr/local/nginx/sbin, /usr/local/bin.
Install the distribution's package: sudo apt-get install nginx (Debian/Ubuntu), sudo dnf install nginx (Fedora)."
fi
[ -x "$bin" ] || fail "$bin is not an executable file"

info=$("$bin" -V 2>&1) || fail "$bin -V failed: $info"
version_line=$(printf '%s\n' "$info" | head -n 1)
version=${version_line##*/}
version=${version%% *}
[ -n "$version" ] || fail "cannot read a version from: $version_line"

if [ "$(printf '%s\n%s\n' "$version" "$NGINX_MIN_VERSION" | sort -V | head -n 1)" != "$NGINX_MIN_VERSION" ]; then
    fail "$bin is nginx $version; SimpleOTP needs $NGINX_MIN_VERSION or newer (it passes -e, added in 1.19.5).
Ubuntu 22.04 ships 1.18: use Ubuntu 24.04 or later, Debian 12 or later, or nginx.org's packages."
fi

if ! grep -q -- '--with-http_auth_request_module' <<<"$info"; then
    fail "$bin (nginx $version) was built without http_auth_request_module, which SimpleOTP needs.
Debian's and Ubuntu's nginx packages have it; so do nginx.org's."
fi

"$here/smoke-test.sh" "$bin" >/dev/null || fail "$bin failed the smoke test (see above)"

echo "linux.sh: $bin is nginx $version with http_auth_request_module: usable by SimpleOTP"
