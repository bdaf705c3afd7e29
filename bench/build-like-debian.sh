#!/usr/bin/env bash
# Builds NGINX 1.28 and the modules the way Debian builds its nginx (1.22): with --with-debug
# and Debian's compiler and linker flags (-O2, -fstack-protector-strong, _FORTIFY_SOURCE,
# -fPIC, -z relro -z now; `nginx -V` of /usr/sbin/nginx), into build/NAME/{sbin,modules} for
# `scripts/bench.sh --nginx NAME`. Beside the release build (1.28, nginx's default -O, no
# debug) and Debian's own nginx, it tells the nginx version's share of a difference from the
# build's.
#
#   bench/build-like-debian.sh [NAME]        default NAME: debflags
#   bench/build-like-debian.sh --no-debug NAME   Debian's flags without --with-debug
set -euo pipefail
. "$(dirname "$0")/../scripts/lib/common.sh"

debug="--with-debug"
if [ "${1:-}" = --no-debug ]; then debug=""; shift; fi
name=${1:-debflags}
case "$name" in vendored|release|system|static|''|*/*|.*) die "choose another NAME than '$name'" ;; esac
out="$ROOT/build/$name" target="$ROOT/target/$name"

# Debian's flags as its nginx reports them (the file-prefix map dropped: paths only).
cc_opt=$(/usr/sbin/nginx -V 2>&1 | sed -n "s/.*--with-cc-opt='\([^']*\)'.*/\1/p" | sed 's/ -ffile-prefix-map=[^ ]*//')
ld_opt=$(/usr/sbin/nginx -V 2>&1 | sed -n "s/.*--with-ld-opt='\([^']*\)'.*/\1/p")
[ -n "$cc_opt" ] || die "no --with-cc-opt in /usr/sbin/nginx -V (apt-get install nginx)"
say "building NGINX 1.28 and the modules into build/$name: $debug --with-cc-opt='$cc_opt' --with-ld-opt='$ld_opt'"
export NGX_CONFIGURE_ARGS="$RELEASE_CONFIGURE_ARGS $debug" NGX_CFLAGS="$cc_opt" NGX_LDFLAGS="$ld_opt"
unset NGINX_BUILD_DIR NGINX_SOURCE_DIR
(cd "$ROOT" && cargo build --release -p ngx-ase-common -p ngx-ase-request -p ngx-ase-response \
    --features ngx/vendored --target-dir "$target")
objs=$(ls -dt "$target"/release/build/nginx-sys-*/out/objs 2>/dev/null | head -n1)
[ -x "$objs/nginx" ] || die "no nginx binary in $objs"
mkdir -p "$out/sbin" "$out/modules"
install -m 0755 "$objs/nginx" "$out/sbin/nginx.new.$$" && mv -f "$out/sbin/nginx.new.$$" "$out/sbin/nginx"
for i in "${!MODULE_FILES[@]}"; do
    install -m 0644 "$target/release/${CRATE_LIBS[$i]}" "$out/modules/${MODULE_FILES[$i]}.new.$$"
    mv -f "$out/modules/${MODULE_FILES[$i]}.new.$$" "$out/modules/${MODULE_FILES[$i]}"
done
say "built: $out/sbin/nginx ($("$out/sbin/nginx" -v 2>&1 | sed 's|.*nginx/||')) and $out/modules"
