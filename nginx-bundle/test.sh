#!/usr/bin/env bash
# Checks nginx-bundle/ on this machine, without downloading anything:
#   - every bash script parses (bash -n) and is clean under shellcheck (when installed);
#   - fetch-windows.ps1 parses (only when pwsh is installed);
#   - versions.env is plain KEY=VALUE lines that bash sources and the PowerShell parser's rule
#     accepts alike, has every key the scripts use, https URLs naming the pinned versions, and
#     64-hex-digit SHA-256 sums;
#   - linux.sh accepts this machine's nginx, and rejects (with the reason) an nginx that is too
#     old, one without auth_request, and one whose `nginx -t` fails;
#   - the workflows in .github/workflows are valid YAML and name only scripts that exist.
# Ends with a "N passed, N failed" line; exits non-zero when anything failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # check DESCRIPTION COMMAND...
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$what"; else bad "$what"; printf '%s\n' "$out" | sed 's/^/     /'; fi
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nginx-bundle-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

scripts=("$here"/*.sh)

# --- syntax ----------------------------------------------------------------------------------
for s in "${scripts[@]}"; do
    check "bash -n $(basename "$s")" bash -n "$s"
    check "$(basename "$s") is executable" test -x "$s"
done
if command -v shellcheck >/dev/null; then
    for s in "${scripts[@]}"; do
        check "shellcheck $(basename "$s")" shellcheck -x "$s"
    done
else
    echo "skip shellcheck: not installed (apt-get install shellcheck)"
fi
if command -v pwsh >/dev/null; then
    check "fetch-windows.ps1 parses" pwsh -NoProfile -Command \
        "\$e=\$null; [void][System.Management.Automation.Language.Parser]::ParseFile('$here/fetch-windows.ps1',[ref]\$null,[ref]\$e); if (\$e) { \$e; exit 1 }"
else
    echo "skip fetch-windows.ps1 parse: pwsh not installed"
fi

# --- versions.env ----------------------------------------------------------------------------
env_file=$here/versions.env
parse_like_powershell() { # the rule fetch-windows.ps1 applies to every line
    local line t n=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        t=$(printf '%s' "$line" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
        [ -z "$t" ] || [ "${t#\#}" != "$t" ] && continue
        [[ $t =~ ^[A-Z0-9_]+=[^[:space:]]+$ ]] || { echo "line $n is not KEY=VALUE: $line"; return 1; }
    done <"$env_file"
}
check "versions.env: every line is a comment or KEY=VALUE" parse_like_powershell

# shellcheck disable=SC2016 # $1 and ${!k} are for the inner bash
sourced() { env -i bash -c 'set -eu; . "$1"; for k in "${@:2}"; do printf "%s=%s\n" "$k" "${!k}"; done' _ "$env_file" "$@"; }
keys=(NGINX_VERSION NGINX_WINDOWS_ZIP_URL NGINX_WINDOWS_ZIP_SHA256 NGINX_SOURCE_URL NGINX_SOURCE_SHA256
      PCRE2_VERSION PCRE2_URL PCRE2_SHA256 ZLIB_VERSION ZLIB_URL ZLIB_SHA256
      OPENSSL_VERSION OPENSSL_URL OPENSSL_SHA256 NGINX_MIN_VERSION MACOSX_DEPLOYMENT_TARGET)
check "versions.env: bash sources it and it sets every key the scripts use" sourced "${keys[@]}"

# Same values whichever way it is read.
same_both_ways() {
    local a b names
    a=$(grep -Ev '^[[:space:]]*(#|$)' "$env_file" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' | sort)
    readarray -t names < <(grep -Ev '^[[:space:]]*(#|$)' "$env_file" | sed 's/=.*//; s/^[[:space:]]*//')
    b=$(sourced "${names[@]}" | sort)
    [ "$a" = "$b" ] || { diff <(echo "$a") <(echo "$b"); return 1; }
}
check "versions.env: bash and the KEY=VALUE reading agree on every value" same_both_ways

# shellcheck source-path=SCRIPTDIR source=versions.env
. "$env_file"
hashes_are_hex() {
    local k rc=0 n=0
    while read -r k; do
        n=$((n + 1))
        [[ ${!k} =~ ^[0-9a-f]{64}$ ]] || { echo "$k=${!k} is not 64 lowercase hex digits"; rc=1; }
    done < <(grep -Eo '^[A-Z0-9_]*SHA256' "$env_file")
    [ "$n" -ge 5 ] || { echo "only $n hashes found"; rc=1; }
    return $rc
}
check "versions.env: every *_SHA256 is 64 lowercase hex digits" hashes_are_hex
# shellcheck disable=SC2016 # $1 is for the inner bash
check "versions.env: hashes are all different" bash -c '[ "$(grep -Eo "=[0-9a-f]{64}$" "$1" | sort | uniq -d)" = "" ]' _ "$env_file"
urls_match() {
    local rc=0 pair url ver
    for pair in NGINX_WINDOWS_ZIP_URL:NGINX_VERSION NGINX_SOURCE_URL:NGINX_VERSION PCRE2_URL:PCRE2_VERSION \
                ZLIB_URL:ZLIB_VERSION OPENSSL_URL:OPENSSL_VERSION; do
        url=${pair%%:*} ver=${pair##*:}
        url=${!url} ver=${!ver}
        [[ $url == https://* ]] || { echo "$url is not https"; rc=1; }
        [[ $url == *"-$ver."* ]] || { echo "$url does not name version $ver"; rc=1; }
    done
    [[ $NGINX_WINDOWS_ZIP_URL == *.zip ]] || { echo "the Windows URL is not a zip"; rc=1; }
    return $rc
}
check "versions.env: URLs are https and name the pinned versions" urls_match

# --- linux.sh on this machine, and on fakes ----------------------------------------------------
if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
    check "linux.sh accepts this machine's nginx" "$here/linux.sh"
else
    bad "linux.sh: no nginx on this machine (apt-get install nginx)"
fi

# fake NAME VERSION CONFIGURE_ARGS TEST_EXIT: an executable that answers -v/-V/-t like nginx.
fake() {
    cat >"$tmp/$1" <<EOF
#!/bin/sh
case "\$1" in
    -v) echo "nginx version: nginx/$2" >&2 ;;
    -V) echo "nginx version: nginx/$2" >&2; echo "configure arguments: $3" >&2 ;;
    -t) echo "nginx: [emerg] unknown directive \"auth_request\"" >&2; exit $4 ;;
esac
EOF
    chmod +x "$tmp/$1"
}
expect_rejection() { # expect_rejection BINARY TEXT: linux.sh must fail and say TEXT
    local out
    if out=$("$here/linux.sh" "$1" 2>&1); then echo "accepted: $out"; return 1; fi
    grep -q -- "$2" <<<"$out" || { echo "rejected, but without '$2': $out"; return 1; }
}
fake old 1.18.0 "--with-http_auth_request_module --with-http_ssl_module" 0
check "linux.sh rejects nginx 1.18 (no -e)" expect_rejection "$tmp/old" "needs $NGINX_MIN_VERSION or newer"
fake noauth 1.24.0 "--with-http_ssl_module" 0
check "linux.sh rejects an nginx without auth_request" expect_rejection "$tmp/noauth" "without http_auth_request_module"
fake broken 1.24.0 "--with-http_auth_request_module" 1
check "linux.sh rejects an nginx whose nginx -t fails" expect_rejection "$tmp/broken" "failed the smoke test"
check "linux.sh rejects a path that is not there" expect_rejection "$tmp/none" "not an executable"

# --- build scripts refuse what they cannot do, before downloading anything ----------------------
refuses() { # refuses TEXT COMMAND...: COMMAND must fail and say TEXT
    local text=$1 out
    shift
    if out=$("$@" 2>&1); then echo "succeeded: $out"; return 1; fi
    grep -q -- "$text" <<<"$out" || { echo "failed, but without '$text': $out"; return 1; }
}
check "build-static.sh refuses a target it cannot build here" \
    refuses "cannot build x86_64-pc-windows-msvc" env WORK_DIR="$tmp/w" OUT_DIR="$tmp/o" "$here/build-static.sh" x86_64-pc-windows-msvc
# A pin file whose first download cannot succeed (nothing listens on port 1): the build must stop there.
sed 's|^NGINX_SOURCE_URL=.*|NGINX_SOURCE_URL=https://127.0.0.1:1/nginx-0.0.0.tar.gz|' "$env_file" >"$tmp/unreachable.env"
check "build-static.sh stops at a failed download" \
    refuses "download of https://127.0.0.1:1/nginx-0.0.0.tar.gz failed" \
    env NGINX_BUNDLE_VERSIONS="$tmp/unreachable.env" WORK_DIR="$tmp/w" OUT_DIR="$tmp/o" "$here/build-static.sh"
if [ "$(uname -s)" != Darwin ]; then
    check "build-macos.sh refuses to run off macOS" refuses "needs macOS" "$here/build-macos.sh"
fi
# shellcheck disable=SC2016 # $1 is for the inner bash; uname is faked so the target check is reached
check "build-macos.sh refuses a non-macOS target" refuses "not a macOS target" \
    bash -c 'uname() { echo Darwin; }; export -f uname; "$1" x86_64-unknown-linux-gnu' _ "$here/build-macos.sh"
# shellcheck disable=SC2016 # $1 is for the inner bash
check "build-linux.sh refuses to run off Linux" refuses "needs Linux" \
    bash -c 'uname() { echo Darwin; }; export -f uname; "$1"' _ "$here/build-linux.sh"
# shellcheck disable=SC2016 # $1 is for the inner bash; uname is faked so the target check is reached
check "build-linux.sh refuses a non-Linux target" refuses "not a Linux target" \
    bash -c 'uname() { echo Linux; }; export -f uname; "$1" aarch64-apple-darwin' _ "$here/build-linux.sh"

# --- the AppImage's nginx ------------------------------------------------------------------------
# build-linux.sh writes what tauri.appimage.conf.json maps next to the app (usr/bin/nginx, where
# the engine looks first); the packages' config must not carry an nginx (an externalBin would put
# one into the .deb and the .rpm, which depend on the distribution's).
appimage_config_matches() {
    local conf=$root/src-tauri/tauri.appimage.conf.json rc=0
    grep -q '"/usr/bin/nginx": "binaries/appimage/nginx"' "$conf" || { echo "$conf does not map binaries/appimage/nginx to /usr/bin/nginx"; rc=1; }
    grep -q '"binaries/appimage/nginx-licenses"' "$conf" || { echo "$conf does not ship binaries/appimage/nginx-licenses"; rc=1; }
    grep -q 'src-tauri/binaries/appimage' "$here/build-linux.sh" || { echo "build-linux.sh does not write src-tauri/binaries/appimage"; rc=1; }
    if grep -l externalBin "$conf" "$root/src-tauri/tauri.linux.conf.json" "$root/src-tauri/tauri.conf.json"; then
        echo "an externalBin would put nginx into the .deb and the .rpm"; rc=1
    fi
    return $rc
}
check "tauri.appimage.conf.json maps build-linux.sh's nginx; no externalBin on Linux" appimage_config_matches

# --- workflows -------------------------------------------------------------------------------
if python3 -c 'import yaml' 2>/dev/null; then
    for wf in "$root"/.github/workflows/*.yml; do
        [ -e "$wf" ] || continue
        check "$(basename "$wf") is valid YAML with jobs" python3 -c '
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
assert isinstance(doc, dict) and doc.get("jobs"), "no jobs"
assert True in doc or "on" in doc, "no trigger (on:)"
for name, job in doc["jobs"].items():
    assert "runs-on" in job, f"job {name} has no runs-on"
    assert job.get("steps"), f"job {name} has no steps"
' "$wf"
    done
else
    echo "skip workflow YAML: python3 has no yaml module (pip install pyyaml)"
fi
names_existing_scripts() {
    local rc=0 f n=0
    while read -r f; do
        n=$((n + 1))
        [ -f "$root/$f" ] || { echo "a workflow names $f, which does not exist"; rc=1; }
    done < <(grep -Eho '(nginx-bundle|scripts)/[A-Za-z0-9_.-]+\.(sh|ps1)|scripts/test\b' "$root"/.github/workflows/*.yml | sort -u)
    [ "$n" -gt 0 ] || { echo "the workflows name no scripts at all"; rc=1; }
    return $rc
}
check "workflows name only scripts that exist" names_existing_scripts

echo "nginx-bundle: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
