# Building loadable modules for someone else's nginx: read what the binary was built with,
# configure a copy of a source tree of the same version the same way, so that the modules
# get its structure layouts and its module signature. Source after common.sh.
# shellcheck shell=bash

# nginx_version BINARY: "1.26.2" (from "nginx version: nginx/1.26.2 (nginx-plus-r33)" too).
nginx_version() {
    "$1" -v 2>&1 | sed -n 's|^nginx version: [^/]*/\([0-9][0-9.]*\).*|\1|p'
}

# is_nginx_plus BINARY: whether it is NGINX Plus (its -v names the release, e.g. nginx-plus-r33).
is_nginx_plus() {
    "$1" -v 2>&1 | grep -q 'nginx-plus'
}

# tree_version DIR: the version of the nginx source tree at DIR ("" when it is not one).
tree_version() {
    sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$1/src/core/nginx.h" 2>/dev/null
}

# matching_source_hint VERSION: where to get the source of that nginx version.
matching_source_hint() {
    echo "get nginx-$1.tar.gz from nginx.org/download (or your distribution's source package, e.g. apt-get source nginx) and pass its directory"
}

# nginx_configure_args BINARY: the binary's own ./configure arguments, one per line, as
# modules need them. Dropped: modules added from outside (their directories are on the
# machine that built nginx, and they change neither layouts nor the signature) and
# modules nginx builds as loadable ones (=dynamic: same reason, and they would need their
# libraries here). NGINX Plus: its arguments name modules open-source nginx does not
# have; the matching open-source version with --with-compat (and TLS, which ngx-ase
# uses) gives the same signature, as NGINX's own documentation for Plus modules says.
nginx_configure_args() {
    local bin="$1" line arg
    if is_nginx_plus "$bin"; then
        printf '%s\n' --with-compat --with-http_ssl_module
        return
    fi
    line=$("$bin" -V 2>&1 | sed -n 's/^configure arguments: //p')
    # xargs undoes the shell quoting nginx -V prints (--with-cc-opt='-g -O2 ...').
    printf '%s' "$line" | xargs printf '%s\n' | while IFS= read -r arg; do
        case "$arg" in
            ''|--add-module=*|--add-dynamic-module=*|--with-*=dynamic) ;;
            *) printf '%s\n' "$arg" ;;
        esac
    done
}

# check_source_for SRC BINARY: refuses a source tree of another version than BINARY, and
# an nginx the modules cannot serve.
check_source_for() {
    local src="$1" bin="$2" version src_version v
    version=$(nginx_version "$bin")
    [ -n "$version" ] || die "cannot tell the version of $bin (nginx -v said: $("$bin" -v 2>&1))"
    src_version=$(tree_version "$src")
    [ -n "$src_version" ] || die "$src is not an nginx source tree (no src/core/nginx.h); $(matching_source_hint "$version")"
    [ "$src_version" = "$version" ] \
        || die "$bin is nginx $version but $src is nginx $src_version: modules built from it would not load; $(matching_source_hint "$version")"
    v=$("$bin" -V 2>&1) || die "$bin -V failed: $v"
    case "$v" in
        *--with-http_ssl_module*) ;;
        *) die "$bin was built without --with-http_ssl_module; ngx-ase needs it (TLS to the ASE), and its modules cannot load into this nginx" ;;
    esac
}

# configure_tree_for SRC BINARY OUT: configures a copy of the source tree SRC at OUT/nginx-src
# with BINARY's configure arguments (reused while SRC, the binary and the arguments are the
# same), for its headers and objs/ngx_auto_config.h. SRC itself is never written to.
configure_tree_for() {
    local src="$1" bin="$2" out="$3" version tree stamp args=()
    check_source_for "$src" "$bin"
    version=$(nginx_version "$bin")
    mapfile -t args < <(nginx_configure_args "$bin")
    tree="$out/nginx-src"
    stamp="nginx $version from $(cd "$src" && pwd) for $(readlink -f "$bin"); $(printf '%q ' "${args[@]}")"
    if [ -f "$tree/objs/ngx_auto_config.h" ] && [ "$(cat "$tree/.ngx-ase-configured" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    say "configuring a copy of $src (nginx $version) as $bin was built"
    rm -rf "$tree" && mkdir -p "$out" && cp -a "$src" "$tree"
    rm -rf "$tree/objs" "$tree/Makefile"
    # Release tarballs have ./configure; a source repository has it at auto/configure.
    local configure=./configure
    [ -x "$tree/configure" ] || configure=auto/configure
    (cd "$tree" && "$configure" "${args[@]}" >"$out/configure.log" 2>&1) \
        || { tail -n 15 "$out/configure.log" >&2; die "configuring $src as $bin was built failed (a library it needs may be missing); see $out/configure.log"; }
    echo "$stamp" > "$tree/.ngx-ase-configured"
}
