#!/usr/bin/env bash
# Builds nginx for Windows (nginx.exe, x86_64, mingw-w64) once per machine and prints its path.
# scripts/wine-nginx-test.sh runs the engine's integration tests under Wine with it.
#
#   scripts/windows-nginx.sh          the cached nginx.exe's path on stdout (built when missing)
#
# Cache (outside the repo, never committed): ${XDG_CACHE_HOME:-~/.cache}/simpleotp/nginx-windows/
#   <nginx>-openssl<openssl>/nginx.exe   the result; rebuilt only when missing
#   src/                                   the sources (a throw-away cargo project fetches the
#                                          crates; Debian's pcre2 source package); build/ (scratch)
#
# Sources, none downloaded by hand:
# - nginx: the crates.io crate `nginx-src` (nginx's own tree, with src/os/win32, from ngx-rust);
#   Debian's nginx source package lacks the Windows port.
# - OpenSSL: the crates.io crate `openssl-src` (the 3.5 long-term-support line, as nginx-bundle's
#   sidecars), for TLS: network-facing apps are served over HTTPS.
# - PCRE2: Debian's source package (`apt-get source pcre2`; a `Types: deb-src` entry for the same
#   mirror and suites as /etc/apt/sources.list.d/debian.sources is added when there is none).
# The recipe is ../shared/notes/testing-here.md's: PCRE2 configured for the target first, because
# nginx's Makefile runs PCRE2's configure without --host (`touch Makefile` keeps it from running
# again); OpenSSL likewise built first with its mingw64 target (nginx's own rule would run
# `./config` for the build machine), its installed header touched after nginx's configure. Then
# nginx's auto/configure --crossbuild=win32. No gzip (no zlib needed; the engine does not use it).
# Measured on 2 cores (shared with a cargo build): 10m42s, 7 min of CPU, most of it OpenSSL; every
# later run prints the path at once.
#
# Needs gcc-mingw-w64-x86-64, make, perl and dpkg-dev (installed when missing, as root or with sudo).
set -euo pipefail

NGINX_SRC_CRATE='1.28.5+1.28.3'     # nginx 1.28.3
OPENSSL_SRC_CRATE='300.5.5+3.5.5'   # OpenSSL 3.5.5
nginx_version=${NGINX_SRC_CRATE#*+}
openssl_version=${OPENSSL_SRC_CRATE#*+}

cache="${XDG_CACHE_HOME:-$HOME/.cache}/simpleotp/nginx-windows"
out_dir="$cache/$nginx_version-openssl$openssl_version"
exe="$out_dir/nginx.exe"

log() { echo "windows-nginx: $*" >&2; }

if [ -f "$exe" ]; then
    echo "$exe"
    exit 0
fi

mkdir -p "$cache"
# One build at a time (scripts/test's background run and a person's run may meet here).
exec 9>"$cache/.lock"
flock 9
if [ -f "$exe" ]; then
    echo "$exe"
    exit 0
fi
started=$SECONDS

# ---- tools
# scripts/test runs this in the background while its own steps may use apt too: wait for apt's locks.
apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
missing=()
for package in gcc-mingw-w64-x86-64 make perl dpkg-dev; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    "${sudo[@]}" "${apt[@]}" update -qq
    "${sudo[@]}" "${apt[@]}" install -y -qq --no-install-recommends --no-remove "${missing[@]}" >&2
fi

src="$cache/src"
mkdir -p "$src"

# ---- nginx and OpenSSL: crates.io, through cargo (its registry cache, its checksums)
fetcher="$src/fetch-crates"
mkdir -p "$fetcher/src"
cat > "$fetcher/Cargo.toml" <<EOF
[package]
name = "fetch-windows-nginx-sources"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
nginx-src = "=$NGINX_SRC_CRATE"
openssl-src = "=$OPENSSL_SRC_CRATE"

[workspace]
EOF
: > "$fetcher/src/lib.rs"
log "fetching nginx-src $NGINX_SRC_CRATE and openssl-src $OPENSSL_SRC_CRATE (cargo)"
(cd "$fetcher" && cargo fetch --quiet >&2)
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
crate_dir() {
    local found
    found=$(find "$registry" -mindepth 2 -maxdepth 2 -type d -name "$1" | head -n 1)
    [ -n "$found" ] || { log "cargo fetched $1 but it is not in $registry"; exit 1; }
    echo "$found"
}
nginx_crate=$(crate_dir "nginx-src-$NGINX_SRC_CRATE")
openssl_crate=$(crate_dir "openssl-src-$OPENSSL_SRC_CRATE")
[ -d "$nginx_crate/nginx/src/os/win32" ] || { log "$nginx_crate has no nginx/src/os/win32"; exit 1; }
[ -f "$openssl_crate/openssl/Configure" ] || { log "$openssl_crate has no openssl/Configure"; exit 1; }

# ---- PCRE2: Debian's source package
pcre2_src=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'pcre2-*' | head -n 1)
if [ -z "$pcre2_src" ]; then
    if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        [ -f /etc/apt/sources.list.d/debian.sources ] || { log "no deb-src entry and no /etc/apt/sources.list.d/debian.sources to copy one from"; exit 1; }
        log "adding /etc/apt/sources.list.d/debian-src.sources (deb-src for the mirror and suites of debian.sources)"
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
            | "${sudo[@]}" tee /etc/apt/sources.list.d/debian-src.sources > /dev/null
        "${sudo[@]}" "${apt[@]}" update -qq
    fi
    # The newest version first; should a mirror lack it (seen here: debian-security's source pool
    # answered 404), the version of each suite in turn.
    log "fetching Debian's pcre2 source package"
    fetched=false
    for wanted in pcre2 $(apt-cache showsrc pcre2 2>/dev/null | sed -n 's/^Version: /pcre2=/p' | sort -r -V -t= -k2); do
        if (cd "$src" && apt-get source -qq "$wanted" >&2 2>/dev/null); then fetched=true; break; fi
        log "apt-get source $wanted failed; trying an older version"
    done
    $fetched || { log "apt-get source pcre2 failed for every version apt knows"; exit 1; }
    pcre2_src=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'pcre2-*' | head -n 1)
    [ -n "$pcre2_src" ] || { log "apt-get source pcre2 left no pcre2-* folder in $src"; exit 1; }
fi

# ---- build, in a scratch copy (configure and make write into the trees)
build="$cache/build"
rm -rf "$build"
mkdir -p "$build"
cp -a "$nginx_crate/nginx" "$build/nginx"
cp -a "$openssl_crate/openssl" "$build/openssl"
cp -a "$pcre2_src" "$build/pcre2"
jobs=$(nproc 2>/dev/null || echo 2)

# no-quic: Debian 12's mingw-w64 headers lack SIO_UDP_NETRESET, which OpenSSL's QUIC code uses
# (nginx is built without HTTP/3 anyway).
log "OpenSSL $openssl_version for mingw64"
openssl_prefix="$build/openssl/.openssl"   # where nginx's generic OpenSSL rules look
(cd "$build/openssl" && ./Configure mingw64 --cross-compile-prefix=x86_64-w64-mingw32- \
    no-shared no-threads no-module no-tests no-docs no-quic --prefix="$openssl_prefix" --libdir=lib >/dev/null \
    && make -j"$jobs" build_libs >/dev/null && make install_dev >/dev/null) \
    || { log "OpenSSL failed to build (see above)"; exit 1; }

log "PCRE2 ($(basename "$pcre2_src")) configured for the target"
(cd "$build/pcre2" && ./configure --host=x86_64-w64-mingw32 --disable-shared --enable-static \
    CC=x86_64-w64-mingw32-gcc >/dev/null && touch Makefile)

log "nginx $nginx_version for Windows"
(cd "$build/nginx" && auto/configure --crossbuild=win32 \
    --with-cc=x86_64-w64-mingw32-gcc --with-cpp=x86_64-w64-mingw32-cpp \
    --with-cc-opt=-DFD_SETSIZE=1024 \
    --with-pcre=../pcre2 \
    --with-openssl=../openssl --with-http_ssl_module \
    --without-http_gzip_module \
    --with-http_auth_request_module --with-http_realip_module \
    --prefix=. >/dev/null)
# nginx's Makefile would configure PCRE2 and OpenSSL again for the build machine: they are
# newer than its Makefile, so make leaves them as they are.
touch "$build/pcre2/Makefile" "$openssl_prefix/include/openssl/ssl.h"
(cd "$build/nginx" && make -j"$jobs" >/dev/null) || { log "nginx failed to build (see above)"; exit 1; }

mkdir -p "$out_dir"
cp "$build/nginx/objs/nginx.exe" "$exe.tmp"
mv "$exe.tmp" "$exe"
rm -rf "$build"
log "built $exe in $((SECONDS - started))s"
echo "$exe"
