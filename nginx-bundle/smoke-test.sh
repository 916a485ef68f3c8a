#!/usr/bin/env bash
# Checks that an nginx binary can do what SimpleOTP needs of it, by running it exactly the way the
# engine does (`-p PREFIX -c CONF -e ERROR_LOG`, every path set in the configuration), on a
# configuration that uses auth_request, a PCRE regex with a named capture and proxy_pass:
#
#   nginx-bundle/smoke-test.sh /path/to/nginx
#
# Only `nginx -t` is run: nothing listens, nothing is left behind. Used by build-macos.sh on the
# sidecar it built and by linux.sh on the system nginx.
set -euo pipefail

bin=${1:?usage: smoke-test.sh /path/to/nginx}
die() { echo "smoke-test.sh: $*" >&2; exit 1; }

[ -x "$bin" ] || die "$bin is not an executable file"
version_line=$("$bin" -v 2>&1) || die "$bin -v failed: $version_line"
version=${version_line##*/}
version=${version%% *}

# version_at_least A B: whether dotted version A >= B (plain bash: macOS has bash 3.2 and a sort
# that may lack -V).
version_at_least() {
    local IFS=. i
    # shellcheck disable=SC2206 # splitting on dots is the point
    local a=($1) b=($2)
    for i in 0 1 2; do
        if [ "${a[i]:-0}" -gt "${b[i]:-0}" ]; then return 0; fi
        if [ "${a[i]:-0}" -lt "${b[i]:-0}" ]; then return 1; fi
    done
    return 0
}

# `http2 on;` exists since nginx 1.25.1; older ones only know `listen … http2`.
http2_line=""
if version_at_least "$version" 1.25.1; then
    http2_line="http2 on;"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/nginx-smoke.XXXXXX")
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/logs" "$dir/temp"
cat >"$dir/nginx.conf" <<CONF
pid $dir/nginx.pid;
lock_file $dir/nginx.lock;
error_log $dir/logs/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $dir/temp/client_body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;
    server {
        listen 127.0.0.1:18999;
        $http2_line
        location = /auth { internal; proxy_pass http://127.0.0.1:18998/check; }
        location ~ ^/app/(?<rest>.*)\$ { auth_request /auth; proxy_pass http://127.0.0.1:18997/\$rest; }
    }
}
CONF

if ! out=$("$bin" -t -q -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log" 2>&1); then
    die "$bin ($version) rejected a configuration using auth_request, regex captures and -e:
$out"
fi
echo "smoke-test.sh: nginx $version at $bin: auth_request, PCRE, -p/-c/-e all work${http2_line:+, http2 on}"
