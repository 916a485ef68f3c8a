#!/usr/bin/env bash
# Builds a self-contained nginx from pinned, checksum-verified sources, statically linked against
# PCRE2, zlib and OpenSSL, and checks it. The macOS sidecar is built this way (build-macos.sh
# calls this); so is the nginx an AppImage would carry on Linux.
#
#   nginx-bundle/build-static.sh                         # this machine's target
#   nginx-bundle/build-static.sh aarch64-apple-darwin    # one or more target triples:
#       aarch64-apple-darwin x86_64-apple-darwin          (on macOS)
#       x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu (on Linux, the machine's own arch)
#
# Output (the Tauri externalBin location, never committed):
#   src-tauri/binaries/nginx-<target-triple>    the sidecar (Tauri ships it as `nginx` next to the app)
#   src-tauri/binaries/nginx-licenses/          nginx, OpenSSL, PCRE2 and zlib licence texts
#
# Checks on the result: the right architecture; it loads no library beyond the system's own
# (macOS, `otool -L`: /usr/lib/libSystem.B.dylib and /System/Library/Frameworks only; Linux:
# glibc's libraries and libcrypt only); `nginx -V` lists auth_request, ssl and http_v2; and
# smoke-test.sh runs `nginx -t` on a configuration using them, the way the engine runs nginx.
#
# Needs a C compiler, make, perl (OpenSSL's Configure), curl; on macOS Xcode's command-line tools.
# nginx's configure compiles and RUNS test programs, so a binary is built where it can run:
# x86_64 on an Intel Mac (or under Rosetta 2), arm64 on Apple silicon; no cross-building.
#
# Environment: WORK_DIR (default target/nginx-bundle, gitignored), OUT_DIR (default
# src-tauri/binaries), JOBS (default: number of CPUs), NGINX_BUNDLE_VERSIONS (another pin file
# than versions.env, for testing the recipe with other sources).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source-path=SCRIPTDIR source=versions.env
. "${NGINX_BUNDLE_VERSIONS:-$here/versions.env}"

work=${WORK_DIR:-$root/target/nginx-bundle}
out=${OUT_DIR:-$root/src-tauri/binaries}
jobs=${JOBS:-$(sysctl -n hw.ncpu 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
export MACOSX_DEPLOYMENT_TARGET

die() { echo "build-static.sh: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

sha256_of() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

# fetch URL SHA256: downloads into $work/downloads once, and refuses a file whose hash differs.
fetch() {
    local url=$1 want=$2 file
    file="$work/downloads/$(basename "$url")"
    mkdir -p "$work/downloads"
    if [ ! -f "$file" ] || [ "$(sha256_of "$file")" != "$want" ]; then
        log "downloading $url"
        # (errexit does not reach into $(fetch …), hence the explicit checks)
        curl -fsSL --retry 3 --proto '=https' -o "$file.part" "$url" || die "download of $url failed"
        mv "$file.part" "$file" || die "cannot move $file.part into place"
    fi
    local got
    got=$(sha256_of "$file")
    if [ "$got" != "$want" ]; then
        rm -f "$file"
        die "SHA-256 mismatch for $url: expected $want, got $got (file removed)"
    fi
    log "verified $(basename "$file") $got"
    printf '%s\n' "$file"
}

# unpack TARBALL DIR: a fresh copy of the sources for one arch (builds happen in-tree).
unpack() {
    rm -rf "$2"
    mkdir -p "$2"
    tar -xf "$1" -C "$2" --strip-components=1
}

# The only libraries the binary may load: the system's own, present on every machine.
check_linkage() {
    local bin=$1 bad
    if [ "$os" = Darwin ]; then
        bad=$(otool -L "$bin" | tail -n +2 | awk '{print $1}' \
            | grep -Ev '^(/usr/lib/libSystem\.B\.dylib|/System/Library/Frameworks/[^/]+\.framework/.*)$' || true)
        [ -z "$bad" ] || { otool -L "$bin" >&2; die "$bin links libraries that are not on every Mac: $bad"; }
        log "otool -L: only libSystem and system frameworks"
    else
        bad=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' \
            | grep -Ev '^(libc|libm|libdl|libpthread|librt|libcrypt)\.so\.[0-9]+$|^ld-linux' || true)
        [ -z "$bad" ] || { readelf -d "$bin" >&2; die "$bin needs libraries beyond glibc and libcrypt: $bad"; }
        log "readelf -d: needs only $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
    fi
}

build_one() {
    local triple=$1 arch ossl_target cflags ldflags
    case "$os:$triple" in
        Darwin:aarch64-apple-darwin) arch=arm64 ossl_target=darwin64-arm64-cc ;;
        Darwin:x86_64-apple-darwin) arch=x86_64 ossl_target=darwin64-x86_64-cc ;;
        Linux:x86_64-unknown-linux-gnu) arch=x86_64 ossl_target=linux-x86_64 ;;
        Linux:aarch64-unknown-linux-gnu) arch=aarch64 ossl_target=linux-aarch64 ;;
        *) die "cannot build $triple on $os" ;;
    esac
    if [ "$os" = Darwin ]; then
        if [ "$(uname -m)" != "$arch" ] && ! arch "-$arch" /usr/bin/true 2>/dev/null; then
            die "cannot run $arch programs on this $(uname -m) Mac, and nginx's configure must; build $triple on a matching runner (or install Rosetta 2 for x86_64)"
        fi
        cflags="-arch $arch -mmacosx-version-min=$MACOSX_DEPLOYMENT_TARGET -O2"
        ldflags="-arch $arch -mmacosx-version-min=$MACOSX_DEPLOYMENT_TARGET"
    else
        [ "$(uname -m)" = "$arch" ] || die "this is a $(uname -m) machine; build $triple on a $arch one"
        cflags="-O2"
        ldflags=""
    fi

    local top="$work/$triple" deps="$work/$triple/deps"
    rm -rf "$deps"
    mkdir -p "$deps"

    log "[$triple] zlib $ZLIB_VERSION"
    unpack "$zlib_tgz" "$top/zlib"
    (cd "$top/zlib" && CFLAGS="$cflags" ./configure --static --prefix="$deps" >/dev/null && make -j"$jobs" >/dev/null && make install >/dev/null)

    log "[$triple] PCRE2 $PCRE2_VERSION"
    unpack "$pcre2_tgz" "$top/pcre2"
    # No JIT: under the hardened runtime of a notarized app it would need an extra entitlement.
    (cd "$top/pcre2" && ./configure --prefix="$deps" --disable-shared --enable-static --disable-jit \
        CFLAGS="$cflags" >/dev/null && make -j"$jobs" >/dev/null && make install >/dev/null)

    log "[$triple] OpenSSL $OPENSSL_VERSION"
    unpack "$openssl_tgz" "$top/openssl"
    # Static libraries only (no-shared), no dynamically loaded engines/providers (no-module).
    # OPENSSLDIR is compiled in but unused: nginx gets certificates from its own configuration.
    # shellcheck disable=SC2086 # $cflags is a list of flags
    (cd "$top/openssl" && ./Configure "$ossl_target" no-shared no-module no-tests \
        --prefix="$deps" --libdir=lib --openssldir=/usr/local/ssl $cflags >/dev/null \
        && make -j"$jobs" build_libs >/dev/null && make install_dev >/dev/null)

    log "[$triple] nginx $NGINX_VERSION"
    unpack "$nginx_tgz" "$top/nginx"
    # Only static archives are in $deps/lib, and it is searched first, so -lz, -lpcre2-8, -lssl
    # and -lcrypto resolve to them (not to the SDK's or the system's shared libraries). No --prefix and no paths: the engine
    # always passes -p, -c and -e and sets pid, lock_file and every *_temp_path itself.
    (cd "$top/nginx" && ./configure \
        --with-cc-opt="$cflags -I$deps/include" \
        --with-ld-opt="$ldflags -L$deps/lib" \
        --with-pcre \
        --with-http_ssl_module \
        --with-http_v2_module \
        --with-http_auth_request_module \
        --with-http_realip_module \
        --with-threads \
        >/dev/null && make -j"$jobs" >/dev/null)

    local bin="$top/nginx/objs/nginx"
    if [ "$os" = Darwin ]; then
        strip -x "$bin"
        [ "$(lipo -archs "$bin")" = "$arch" ] || die "$bin is $(lipo -archs "$bin"), expected $arch"
    else
        strip "$bin"
    fi
    check_linkage "$bin"
    local v
    v=$("$bin" -V 2>&1)
    for module in http_auth_request_module http_ssl_module http_v2_module; do
        grep -q -- "--with-$module" <<<"$v" || die "$bin lacks $module; nginx -V says: $v"
    done
    "$here/smoke-test.sh" "$bin"

    mkdir -p "$out"
    cp "$bin" "$out/nginx-$triple"
    chmod 755 "$out/nginx-$triple"
    log "[$triple] wrote $out/nginx-$triple ($(wc -c <"$out/nginx-$triple") bytes)"
}

# copy_licence SRC_DIR NAME: the first LICENSE*/LICENCE*/COPYING* file of a source tree.
copy_licence() {
    local f
    for f in "$1"/LICENSE* "$1"/LICENCE* "$1"/COPYING*; do
        if [ -f "$f" ]; then
            cp "$f" "$out/nginx-licenses/$2.$(basename "$f")"
            return 0
        fi
    done
    return 1
}

copy_licenses() {
    local src="$work/$1"
    rm -rf "$out/nginx-licenses"
    mkdir -p "$out/nginx-licenses"
    copy_licence "$src/nginx" nginx || die "no licence file in the nginx sources"
    copy_licence "$src/openssl" OpenSSL || die "no licence file in the OpenSSL sources"
    copy_licence "$src/pcre2" PCRE2 || die "no licence file in the PCRE2 sources"
    # zlib releases without a LICENSE file carry the licence at the end of README.
    copy_licence "$src/zlib" zlib || sed -n '/^Copyright notice:/,$p' "$src/zlib/README" >"$out/nginx-licenses/zlib.LICENSE"
    log "licences in $out/nginx-licenses"
}

os=$(uname -s)
# No arrays: macOS's /bin/bash is 3.2, where an empty array is "unbound" under set -u.
if [ $# -eq 0 ]; then
    case "$os:$(uname -m)" in
        Darwin:arm64) set -- aarch64-apple-darwin ;;
        Darwin:x86_64) set -- x86_64-apple-darwin ;;
        Linux:x86_64) set -- x86_64-unknown-linux-gnu ;;
        Linux:aarch64) set -- aarch64-unknown-linux-gnu ;;
        *) die "no default target for $os on $(uname -m)" ;;
    esac
fi

# Refuse a wrong target before downloading anything.
for t in "$@"; do
    case "$os:$t" in
        Darwin:aarch64-apple-darwin | Darwin:x86_64-apple-darwin) ;;
        Linux:x86_64-unknown-linux-gnu | Linux:aarch64-unknown-linux-gnu) ;;
        *) die "cannot build $t on $os (macOS: aarch64-apple-darwin, x86_64-apple-darwin; Linux: x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu)" ;;
    esac
done

mkdir -p "$out"
# Nothing downloaded or built is ever committed, even before the repo's .gitignore knows this dir.
[ -f "$out/.gitignore" ] || printf '*\n' >"$out/.gitignore"

nginx_tgz=$(fetch "$NGINX_SOURCE_URL" "$NGINX_SOURCE_SHA256")
pcre2_tgz=$(fetch "$PCRE2_URL" "$PCRE2_SHA256")
zlib_tgz=$(fetch "$ZLIB_URL" "$ZLIB_SHA256")
openssl_tgz=$(fetch "$OPENSSL_URL" "$OPENSSL_SHA256")

for t in "$@"; do
    build_one "$t"
done
copy_licenses "$1"
