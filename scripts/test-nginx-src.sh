#!/usr/bin/env bash
# Tests `scripts/build.sh --nginx-src` the way a user would use it: builds "the user's
# nginx" from the nginx-src crate's sources with a configuration unlike the vendored one
# (another prefix and module set, --with-compat, no --with-debug), builds the modules for
# that binary from a source tree of its version, and runs the smoke test (allow, block,
# report) on it; then checks that a tree of another version is refused with one clear line.
# Run by scripts/test.sh; the last line is "N passed, N failed". With --build-only it only
# builds the user's nginx and the modules for it (scripts/test.sh does that while other
# steps run; the test itself then finds both built).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/nginx-tree.sh"

build_only=0
case "${1:-}" in
    --build-only) build_only=1 ;;
    '') ;;
    *) die "unknown argument: $1 (only --build-only)" ;;
esac
passed=0 failed=0
pass() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }

user="$ROOT/build/user-nginx"
src="$(nginx_src_crate_dir)/nginx"
version=$(tree_version "$src")
user_args=(--prefix="$user" --with-compat --with-http_ssl_module --with-http_v2_module
    --with-stream --with-stream_ssl_module --without-http_gzip_module --without-http_ssi_module
    --without-http_userid_module --with-threads --with-cc-opt=-O1)
stamp="$version $(printf '%q ' "${user_args[@]}")"
if [ ! -x "$user/sbin/nginx" ] || [ "$(cat "$user/.built" 2>/dev/null)" != "$stamp" ]; then
    say "building the user's nginx $version (log: $user.log)"
    rm -rf "$user" "$user-src" && cp -a "$src" "$user-src"
    (cd "$user-src" && auto/configure "${user_args[@]}" && make -j"$(nproc)" && make install) >"$user.log" 2>&1 \
        || { tail -n 30 "$user.log"; die "building the user's nginx failed; see $user.log"; }
    rm -rf "$user-src"
    echo "$stamp" > "$user/.built"
fi

if [ "$build_only" -eq 1 ]; then
    exec "$ROOT/scripts/build.sh" --nginx-src "$src" --nginx "$user/sbin/nginx" --name custom
fi
say "building the modules for it with --nginx-src"
if "$ROOT/scripts/build.sh" --nginx-src "$src" --nginx "$user/sbin/nginx" --name custom; then
    pass "build.sh --nginx-src builds the modules for $user/sbin/nginx"
    say "the smoke test against the user's nginx"
    if env NGX_ASE_FLAVOUR=custom cargo test --release -p ngx-ase-tests --target-dir "$ROOT/target/tests" --test smoke; then
        pass "allow, block and report through the user's nginx"
    else
        fail "the smoke test against the user's nginx"
    fi
else
    fail "build.sh --nginx-src for $user/sbin/nginx"
fi

# A tree of another version: the copy says 1.0.1, the binary is $version.
other="$(mktemp -d)"
trap 'rm -rf "$other"' EXIT
mkdir -p "$other/src/core"
printf '#define NGINX_VERSION      "1.0.1"\n' > "$other/src/core/nginx.h"
rc=0
out=$("$ROOT/scripts/build.sh" --nginx-src "$other" --nginx "$user/sbin/nginx" --name mismatch 2>&1) || rc=$?
want="error: $user/sbin/nginx is nginx $version but $other is nginx 1.0.1: modules built from it would not load; get nginx-$version.tar.gz"
if [ "$rc" -ne 0 ] && [ "$(printf '%s\n' "$out" | grep -c '^error:')" -eq 1 ] && printf '%s\n' "$out" | grep -qF "$want" \
    && [ ! -e "$ROOT/build/mismatch/nginx-src" ]; then
    pass "another version's tree is refused with one clear line"
else
    fail "another version's tree: rc=$rc, said: $out"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
