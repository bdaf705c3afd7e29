# Shared helpers for the scripts in scripts/. Source it; it sets ROOT to the repo root.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ROOT

say()  { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages every build needs (bindgen, nginx's configure, TLS, compression).
BUILD_PACKAGES=(libclang-dev libpcre2-dev libssl-dev zlib1g-dev pkg-config make gcc)
# ./configure flags of the vendored NGINX builds (the nginx-sys crate reads
# NGX_CONFIGURE_ARGS and rebuilds NGINX whenever it changes, so every cargo command on a
# target directory must use that directory's value). The tests' build has --with-debug;
# the benchmark's (release) is NGINX as users run it. Both have auth_request for the
# benchmark's native floor. The tests' has realip for the load-balancer test.
VENDORED_CONFIGURE_ARGS="--with-debug --with-http_auth_request_module --with-http_stub_status_module --with-http_realip_module"
RELEASE_CONFIGURE_ARGS="--with-http_auth_request_module"

# ensure_packages PKG...: installs what is missing when root, else says what to install.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing Debian packages: ${missing[*]} (run: sudo apt-get install -y ${missing[*]})"
    fi
    say "installing ${missing[*]}"
    if [ -z "${APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
        export APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

ensure_rust() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
}

# The nginx module file names, in load order.
MODULE_FILES=(ngx_ase_common_module.so ngx_http_ase_request_module.so ngx_http_ase_response_module.so)
# The cargo library names they are built as, same order.
CRATE_LIBS=(libngx_ase_common.so libngx_ase_request.so libngx_ase_response.so)

# nginx_src_crate_dir: the nginx-src crate's directory (its NGINX sources are in nginx/),
# downloaded by cargo like any crate; cargo metadata only lists it with the `vendored`
# features on.
nginx_src_crate_dir() {
    local dir
    dir=$(cd "$ROOT" && cargo metadata --format-version 1 --all-features \
        | grep -o '"manifest_path":"[^"]*/nginx-src-[^"/]*/Cargo.toml"' | head -n1 \
        | sed -e 's/^"manifest_path":"//' -e 's|/Cargo.toml"$||')
    [ -n "$dir" ] && [ -f "$dir/nginx/src/core/nginx.h" ] \
        || die "the nginx-src crate's sources were not found (cargo metadata)"
    echo "$dir"
}
