#!/usr/bin/env bash
# Builds the Debian package of the three modules for one nginx, laid out like Debian's own
# libnginx-mod-* packages:
#   build/dist/libnginx-mod-http-ase_<version>_<arch>.deb
#
#   scripts/package.sh                               for the system nginx: builds the modules
#                                                    (scripts/build.sh --nginx system) first
#   scripts/package.sh --modules DIR --nginx BINARY  the modules in DIR, already built for the
#                                                    nginx at BINARY
#
# The nginx must come from a Debian package that provides nginx-abi-<x.y.z-n> (Debian's and
# Ubuntu's nginx do); the package depends on exactly that, so apt never pairs the modules
# with another nginx. Version: the workspace version, Debian revision 1, and the nginx
# version it was built for (0.1.0-1+nginx1.22.1). DEBFULLNAME and DEBEMAIL set the
# Maintainer field.
#
# What it installs: the modules in /usr/lib/nginx/modules/, their load_module lines in
# /usr/share/nginx/modules-available/mod-http-ase.conf, an example configuration in
# /usr/share/doc/libnginx-mod-http-ase/examples/ase.conf; the maintainer scripts
# (packaging/debian/) link /etc/nginx/modules-enabled/50-mod-http-ase.conf as dh_nginx does.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

PKG=libnginx-mod-http-ase
modules="" nginx_bin=""
while [ $# -gt 0 ]; do
    case "$1" in
        --modules) modules="${2:-}"; shift 2 ;;
        --nginx) nginx_bin="${2:-}"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
if [ -z "$modules" ]; then
    [ -z "$nginx_bin" ] || die "--nginx goes with --modules (without both, it builds for the system nginx)"
    "$ROOT/scripts/build.sh" --nginx system
    modules="$ROOT/build/system/modules"
    nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
fi
[ -n "$nginx_bin" ] || die "--modules goes with --nginx BINARY (the nginx they were built for)"
for m in "${MODULE_FILES[@]}"; do
    [ -f "$modules/$m" ] || die "$modules/$m not found"
done
[ -x "$nginx_bin" ] || die "$nginx_bin is not an executable"
ensure_packages dpkg-dev binutils

# --- the nginx it is for ------------------------------------------------------------------------
nginx_real=$(readlink -f "$nginx_bin")
nginx_version=$("$nginx_real" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
[ -n "$nginx_version" ] || die "$nginx_real -v does not name an nginx version"
owner=$(dpkg-query -S "$nginx_real" 2>/dev/null | sed -n '1s/: .*//p') || true
[ -n "$owner" ] || die "$nginx_real belongs to no Debian package, so no package can name it as a dependency; install the modules with scripts/install.sh instead"
abi=$(dpkg-query -W -f='${Provides}' "$owner" | grep -o 'nginx-abi-[^ ,]*' | head -n1) || true
[ -n "$abi" ] || die "package $owner ($nginx_real) provides no nginx-abi-*: it is not Debian's nginx layout; install the modules with scripts/install.sh instead"
"$nginx_real" -V 2>&1 | grep -q -- '--modules-path=/usr/lib/nginx/modules' \
    || die "$nginx_real was not built with --modules-path=/usr/lib/nginx/modules (Debian's layout)"

ws_version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")
[ -n "$ws_version" ] || die "no version in [workspace.package] of Cargo.toml"
version="$ws_version-1+nginx$nginx_version"
arch=$(dpkg --print-architecture)
maintainer="${DEBFULLNAME:-ngx-ase maintainers} <${DEBEMAIL:-maintainers@ngx-ase.invalid}>"
# The last commit's time for every date in the package: the same tree packs the same bytes.
SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

# --- the tree -----------------------------------------------------------------------------------
stage="$ROOT/build/package/$PKG"
doc="$stage/usr/share/doc/$PKG"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/lib/nginx/modules" "$stage/usr/share/nginx/modules-available" "$doc/examples"
chmod -R 0755 "$stage"
for m in "${MODULE_FILES[@]}"; do
    strip --strip-unneeded --remove-section=.comment --remove-section=.note \
        -o "$stage/usr/lib/nginx/modules/$m" "$modules/$m"
    chmod 0644 "$stage/usr/lib/nginx/modules/$m"
done
{
    echo "# ngx-ase ($PKG): the common module first, the other two need it."
    for m in "${MODULE_FILES[@]}"; do echo "load_module modules/$m;"; done
} >"$stage/usr/share/nginx/modules-available/mod-http-ase.conf"
install -m 0644 "$ROOT/packaging/debian/copyright" "$doc/copyright"
install -m 0644 "$ROOT/packaging/debian/ase.conf" "$doc/examples/ase.conf"
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
cat >"$doc/changelog.Debian" <<EOF
$PKG ($version) unstable; urgency=medium

  * ngx-ase $ws_version (commit $commit) built for nginx $nginx_version ($abi).

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
gzip -9nf "$doc/changelog.Debian"
for s in postinst prerm postrm; do install -m 0755 "$ROOT/packaging/debian/$s" "$stage/DEBIAN/$s"; done

# The stripped modules must still load into that nginx (nginx -t checks version and signature).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
    for m in "${MODULE_FILES[@]}"; do printf 'load_module "%s";\n' "$stage/usr/lib/nginx/modules/$m"; done
    printf 'pid "%s/nginx.pid";\nerror_log stderr;\nevents {}\n' "$tmp"
} >"$tmp/nginx.conf"
out=$("$nginx_real" -t -c "$tmp/nginx.conf" -p "$tmp/" -e stderr 2>&1) \
    || die "the modules in $modules do not load into $nginx_real (nginx $nginx_version); build them for it. nginx said: $out"

# Library dependencies of the modules, as dpkg-shlibdeps finds them (it wants a debian/control;
# the nginx symbols they use are resolved by nginx itself, hence --warnings=0).
mkdir -p "$tmp/src/debian"
printf 'Source: ngx-ase\n\nPackage: %s\nArchitecture: any\n' "$PKG" >"$tmp/src/debian/control"
shlibs=$(cd "$tmp/src" && dpkg-shlibdeps --warnings=0 -O "$stage"/usr/lib/nginx/modules/*.so \
    | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no library dependency for the modules"

(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"
installed_size=$(du -s -k --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: $PKG
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $abi, $shlibs
Recommends: nginx
Section: httpd
Priority: optional
Description: API Security Enforcer (ASE) modules for Nginx
 ngx-ase puts nginx in sideband contact with an API Security Enforcer (ASE, the
 traffic-facing part of Ping Identity's PingIntelligence for APIs): nginx sends
 each request's metadata to the ASE and blocks the clients the ASE names, and
 reports each response. Three dynamic modules: the channel to the ASE nodes,
 the request check, and the response report.
 .
 Built for nginx $nginx_version ($abi). An example configuration is in
 /usr/share/doc/$PKG/examples/ase.conf.
EOF

mkdir -p "$ROOT/build/dist"
deb="$ROOT/build/dist/${PKG}_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
say "built: $deb (Depends: $abi, $shlibs)"
