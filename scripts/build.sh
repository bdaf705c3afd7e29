#!/usr/bin/env bash
# Builds the three ngx-ase modules.
#
#   scripts/build.sh                    against NGINX 1.28 from the nginx-src crate (offline);
#                                       nginx at build/vendored/sbin/nginx, modules in
#                                       build/vendored/modules/
#   scripts/build.sh --nginx release    the same NGINX 1.28 as users run it: no --with-debug
#                                       and no test-only fault injection (the benchmark's);
#                                       build/release/{sbin,modules}
#   scripts/build.sh --nginx system     against the nginx on PATH (Debian's, with nginx-dev):
#                                       --nginx-src /usr/share/nginx/src; build/system/modules/
#   scripts/build.sh --nginx-src DIR [--nginx BINARY] [--name NAME]
#                                       for the nginx at BINARY (default: the one on PATH) from
#                                       an nginx source tree DIR of the same version, configured
#                                       as BINARY was (nginx -V), in a copy; DIR is not written.
#                                       Modules in build/NAME/modules/ (default NAME:
#                                       nginx-VERSION), build/NAME/sbin/nginx links to BINARY
#   scripts/build.sh --static [FLAGS]   NGINX 1.28 from the nginx-src crate with the three
#                                       modules compiled in (./configure --add-module), at
#                                       build/static/sbin/nginx; no load_module needed.
#                                       Also: --nginx static
#   --debug                             cargo's dev profile instead of release
#
# Static build flags, added to ./configure's (--with-compat --with-http_ssl_module
# --with-http_v2_module --with-http_realip_module --with-threads --prefix=build/static):
#   --with-cc-opt=OPTS, --with-ld-opt=OPTS (or --with-cc-opt OPTS), any other --with-* or
#   --without-* flag, and everything after `--`, e.g. a distribution's own flags:
#   scripts/build.sh --static -- --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/nginx-tree.sh"

flavour=vendored
profile=release
configure_extra=()
nginx_src="" nginx_opt="" name=""
while [ $# -gt 0 ]; do
    case "$1" in
        --nginx) [ $# -ge 2 ] || die "--nginx needs a value"; nginx_opt="$2"; shift 2 ;;
        --nginx=*) nginx_opt="${1#*=}"; shift ;;
        --nginx-src) [ $# -ge 2 ] || die "--nginx-src needs a directory"; nginx_src="$2"; shift 2 ;;
        --nginx-src=*) nginx_src="${1#*=}"; shift ;;
        --name) [ $# -ge 2 ] || die "--name needs a value"; name="$2"; shift 2 ;;
        --static) flavour=static; shift ;;
        --debug) profile=debug; shift ;;
        --with-cc-opt|--with-ld-opt)
            [ $# -ge 2 ] || die "$1 needs a value"
            configure_extra+=("$1=$2"); shift 2 ;;
        --with-*|--without-*) configure_extra+=("$1"); shift ;;
        --) shift; configure_extra+=("$@"); break ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
# --nginx names a flavour, or with --nginx-src the nginx binary to build for.
if [ -n "$nginx_src" ]; then
    flavour=source
    nginx_bin=${nginx_opt:-$(command -v nginx || true)}
    [ -n "$nginx_bin" ] || die "no nginx on PATH: say which one with --nginx BINARY"
elif [ "$nginx_opt" = system ]; then
    # Debian's nginx-dev holds the source tree Debian's nginx was built from.
    ensure_packages nginx nginx-dev
    flavour=source nginx_src=/usr/share/nginx/src name=${name:-system}
    nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
elif [ -n "$nginx_opt" ]; then
    flavour="$nginx_opt"
fi
[ -z "$name" ] || [ "$flavour" = source ] || die "--name goes with --nginx-src"
[ ${#configure_extra[@]} -eq 0 ] || [ "$flavour" = static ] \
    || die "configure flags (${configure_extra[*]}) apply to --static builds only"

ensure_rust
ensure_packages "${BUILD_PACKAGES[@]}"

if [ "$flavour" = source ]; then
    [ -x "$nginx_bin" ] || die "$nginx_bin: no such nginx binary"
    [ -d "$nginx_src" ] || die "$nginx_src: no such directory"
    check_source_for "$nginx_src" "$nginx_bin"
    version=$(nginx_version "$nginx_bin")
    name=${name:-nginx-$version}
    case "$name" in
        vendored|release|static|*/*|.*|'') die "--name $name: choose another name (it becomes build/NAME)" ;;
    esac
    out="$ROOT/build/$name"
    target="$ROOT/target/$name"
else
    out="$ROOT/build/$flavour"
    target="$ROOT/target/$flavour"
fi
mkdir -p "$out/modules"
cargo_args=(build -p ngx-ase-common -p ngx-ase-request -p ngx-ase-response --target-dir "$target")
[ "$profile" = release ] && cargo_args+=(--release)

case "$flavour" in
    vendored|release)
        # vendored (the tests'): --with-debug so that `error_log ... debug` works, and the
        # channel's test-only fault injection (a panic on demand). release (the benchmark's):
        # neither. Both: --with-http_auth_request_module for the benchmark's "native floor"
        # (auth_request + mirror, scripts/bench.sh); mirror is built in.
        features=ngx/vendored
        export NGX_CONFIGURE_ARGS="$RELEASE_CONFIGURE_ARGS"
        if [ "$flavour" = vendored ]; then
            NGX_CONFIGURE_ARGS="$VENDORED_CONFIGURE_ARGS"
            features="$features,ngx-ase-common/fault-injection"
        fi
        unset NGINX_BUILD_DIR NGINX_SOURCE_DIR
        say "building the modules and NGINX 1.28 ($flavour)"
        (cd "$ROOT" && cargo "${cargo_args[@]}" --features "$features")
        objs=$(ls -dt "$ROOT"/target/"$flavour"/"$profile"/build/nginx-sys-*/out/objs 2>/dev/null | head -n1)
        [ -x "$objs/nginx" ] || die "the vendored nginx binary was not built (looked in $objs)"
        mkdir -p "$out/sbin"
        install -m 0755 "$objs/nginx" "$out/sbin/nginx.new.$$" && mv -f "$out/sbin/nginx.new.$$" "$out/sbin/nginx"
        ;;
    source)
        configure_tree_for "$nginx_src" "$nginx_bin" "$out"
        tree="$out/nginx-src"
        export NGINX_BUILD_DIR="$tree/objs" NGINX_SOURCE_DIR="$tree"
        say "building the modules for $nginx_bin (nginx $version)"
        (cd "$ROOT" && cargo "${cargo_args[@]}")
        mkdir -p "$out/sbin"
        ln -sfn "$(readlink -f "$nginx_bin")" "$out/sbin/nginx"
        ;;
    static)
        crate_dir=$(nginx_src_crate_dir)
        version=$(tree_version "$crate_dir/nginx")
        configure_args=(--with-compat --with-http_ssl_module --with-http_v2_module
            --with-http_realip_module --with-threads)
        case " ${configure_extra[*]} " in
            *" --prefix="*) ;;
            *) configure_args+=("--prefix=$out") ;;
        esac
        configure_args+=("${configure_extra[@]}")
        # The common module first: the other two look it up and need it before them.
        configure_args+=("--add-module=$ROOT/ngx-ase-common" "--add-module=$ROOT/ngx-ase-request"
            "--add-module=$ROOT/ngx-ase-response")
        cargo_profile=release
        [ "$profile" = debug ] && cargo_profile=dev
        # Read by ngx-ase-static/auto/ngx_ase when configure runs.
        NGX_ASE_CARGO=$(command -v cargo)
        export NGX_ASE_CARGO NGX_ASE_PROFILE="$cargo_profile" NGX_ASE_TARGET_DIR="$ROOT/target/static"
        tree="$out/nginx-src"
        stamp="nginx $version from $crate_dir; $NGX_ASE_CARGO $cargo_profile $NGX_ASE_TARGET_DIR; $(printf '%q ' "${configure_args[@]}")"
        if [ ! -f "$tree/objs/Makefile" ] || [ "$(cat "$tree/.ngx-ase-configured" 2>/dev/null)" != "$stamp" ]; then
            say "configuring a copy of NGINX $version with the modules compiled in"
            # A fresh copy each time: the registry's copy stays untouched, and no object
            # from another configuration survives.
            rm -rf "$tree" && cp -a "$crate_dir/nginx" "$tree"
            rm -f "$tree/Makefile"
            (cd "$tree" && auto/configure "${configure_args[@]}" >"$out/configure.log" 2>&1) \
                || { tail -n 20 "$out/configure.log" >&2; die "nginx configure failed; see $out/configure.log"; }
            echo "$stamp" > "$tree/.ngx-ase-configured"
        fi
        say "building NGINX $version with the modules (cargo, then make; log: $out/make.log)"
        make -C "$tree" -j"$(nproc)" >"$out/make.log" 2>&1 \
            || { tail -n 40 "$out/make.log" >&2; die "the static build failed; see $out/make.log"; }
        mkdir -p "$out/sbin"
        install -m 0755 "$tree/objs/nginx" "$out/sbin/nginx.new.$$" && mv -f "$out/sbin/nginx.new.$$" "$out/sbin/nginx"
        rmdir "$out/modules" 2>/dev/null || true
        built_with=$("$out/sbin/nginx" -V 2>&1) || die "$out/sbin/nginx -V failed: $built_with"
        for m in ngx-ase-common ngx-ase-request ngx-ase-response; do
            case "$built_with" in
                *"--add-module=$ROOT/$m"*) ;;
                *) die "$out/sbin/nginx -V does not list $m" ;;
            esac
        done
        say "built: $out/sbin/nginx (NGINX $version, the modules compiled in: see nginx -V)"
        exit 0
        ;;
    *) die "--nginx takes vendored, release, system or static (or a binary, with --nginx-src), not '$flavour'" ;;
esac

# Install with a new inode (write, then rename): replacing a loaded .so in place crashes
# the workers that have it mapped.
for i in "${!MODULE_FILES[@]}"; do
    install -m 0644 "$target/$profile/${CRATE_LIBS[$i]}" "$out/modules/${MODULE_FILES[$i]}.new.$$"
    mv -f "$out/modules/${MODULE_FILES[$i]}.new.$$" "$out/modules/${MODULE_FILES[$i]}"
done
say "built: $out/modules/{$(IFS=,; echo "${MODULE_FILES[*]}")}"
