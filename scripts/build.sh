#!/usr/bin/env bash
# Builds the three ngx-ase modules.
#
#   scripts/build.sh                    against NGINX 1.28 from the nginx-src crate (offline);
#                                       nginx at build/vendored/sbin/nginx, modules in
#                                       build/vendored/modules/
#   scripts/build.sh --nginx system     against the nginx on PATH (Debian's, with nginx-dev);
#                                       modules in build/system/modules/
#   --debug                             cargo's dev profile instead of release
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

flavour=vendored
profile=release
while [ $# -gt 0 ]; do
    case "$1" in
        --nginx) flavour="${2:-}"; shift 2 ;;
        --nginx=*) flavour="${1#*=}"; shift ;;
        --debug) profile=debug; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

ensure_rust
ensure_packages "${BUILD_PACKAGES[@]}"

out="$ROOT/build/$flavour"
mkdir -p "$out/modules"
cargo_args=(build -p ngx-ase-common -p ngx-ase-request -p ngx-ase-response --target-dir "$ROOT/target/$flavour")
[ "$profile" = release ] && cargo_args+=(--release)

case "$flavour" in
    vendored)
        # --with-debug so that `error_log ... debug` works in tests; it does not change the
        # module ABI signature.
        export NGX_CONFIGURE_ARGS="--with-debug"
        unset NGINX_BUILD_DIR NGINX_SOURCE_DIR
        say "building the modules and NGINX 1.28 (vendored)"
        (cd "$ROOT" && cargo "${cargo_args[@]}" --features ngx/vendored)
        objs=$(ls -dt "$ROOT"/target/vendored/"$profile"/build/nginx-sys-*/out/objs 2>/dev/null | head -n1)
        [ -x "$objs/nginx" ] || die "the vendored nginx binary was not built (looked in $objs)"
        mkdir -p "$out/sbin"
        install -m 0755 "$objs/nginx" "$out/sbin/nginx.new.$$" && mv -f "$out/sbin/nginx.new.$$" "$out/sbin/nginx"
        ;;
    system)
        ensure_packages nginx nginx-dev
        nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
        [ -x "$nginx_bin" ] || die "no nginx on PATH"
        src=/usr/share/nginx/src
        [ -f "$src/conf_flags" ] || die "$src/conf_flags not found: install nginx-dev"
        version=$("$nginx_bin" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
        dev_version=$(dpkg-query -W -f='${Version}' nginx-dev 2>/dev/null | sed 's/-.*//')
        [ -z "$dev_version" ] || [ "$dev_version" = "$version" ] \
            || die "nginx is $version but nginx-dev is $dev_version: the modules would not load"
        tree="$out/nginx-src"
        if [ ! -f "$tree/objs/ngx_auto_config.h" ] || [ "$(cat "$tree/.version" 2>/dev/null)" != "$version" ]; then
            say "configuring a copy of $src (nginx $version) for its headers"
            rm -rf "$tree" && cp -a "$src" "$tree"
            # shellcheck disable=SC1091
            . "$src/conf_flags"
            (cd "$tree" && ./configure "${NGX_CONF_FLAGS[@]}" >"$out/configure.log" 2>&1) \
                || die "nginx configure failed; see $out/configure.log"
            echo "$version" > "$tree/.version"
        fi
        export NGINX_BUILD_DIR="$tree/objs" NGINX_SOURCE_DIR="$tree"
        say "building the modules for the system nginx $version"
        (cd "$ROOT" && cargo "${cargo_args[@]}")
        mkdir -p "$out/sbin"
        ln -sfn "$nginx_bin" "$out/sbin/nginx"
        ;;
    *) die "--nginx takes vendored or system, not '$flavour'" ;;
esac

# Install with a new inode (write, then rename): replacing a loaded .so in place crashes
# the workers that have it mapped.
for i in "${!MODULE_FILES[@]}"; do
    install -m 0644 "$ROOT/target/$flavour/$profile/${CRATE_LIBS[$i]}" "$out/modules/${MODULE_FILES[$i]}.new.$$"
    mv -f "$out/modules/${MODULE_FILES[$i]}.new.$$" "$out/modules/${MODULE_FILES[$i]}"
done
say "built: $out/modules/{$(IFS=,; echo "${MODULE_FILES[*]}")}"
