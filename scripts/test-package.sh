#!/usr/bin/env bash
# Tests the Debian package (scripts/package.sh): builds it for the system nginx, checks its
# contents and its dependency on the nginx ABI, runs lintian (any E: fails), and, as root on
# Debian, the whole life of the package on this machine:
#   dpkg -i  -> the modules-enabled link and nothing else changed in /etc/nginx; `nginx -t`
#               on a test configuration that includes /etc/nginx/modules-enabled/*.conf and
#               the packaged example ase.conf; that nginx (loopback ports, its own pid and
#               logs; the system service is never started or stopped) serves an allowed and
#               a blocked request through the ASE test double
#   dpkg -r  -> /etc/nginx as before, except the link parked as 50-mod-http-ase.conf.removed
#               (what Debian's libnginx-mod-* packages leave, so a reinstall enables it again)
#   dpkg -P  -> /etc/nginx identical to before (bytes, modes, owners, symlinks); then again:
#               dpkg -i, -r, -i (the link comes back), -P -> identical
# The package is purged and the test nginx and double stopped however the test ends.
# Not root, or not Debian: that part says "skipped". Last line: "N passed, M failed[, K skipped]".
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

PKG=libnginx-mod-http-ase
LINK=/etc/nginx/modules-enabled/50-mod-http-ase.conf
AVAILABLE=/usr/share/nginx/modules-available/mod-http-ase.conf
ensure_packages lintian dpkg-dev nginx curl python3
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

T=$(mktemp -d "${TMPDIR:-/tmp}/ngx-ase-package-test.XXXXXX")
chmod 0755 "$T"   # the test nginx's workers (not root) reach its temp directories
installed_by_us=0 double_pid=""
cleanup() {
    if [ -f "$T/nginx.pid" ]; then
        kill -QUIT "$(cat "$T/nginx.pid")" 2>/dev/null || true
        for _ in $(seq 100); do [ -f "$T/nginx.pid" ] || break; sleep 0.05; done
    fi
    if [ -n "$double_pid" ]; then kill "$double_pid" 2>/dev/null || true; fi
    if [ "$installed_by_us" -eq 1 ] && dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null | grep -qv '^not-installed$'; then
        echo "cleanup: dpkg -P $PKG"
        dpkg -P "$PKG" >/dev/null 2>&1 || echo "cleanup: dpkg -P $PKG FAILED: purge it by hand"
    fi
    # A package whose purge is broken (the test said so) still leaves this machine as it was.
    if [ "$installed_by_us" -eq 1 ]; then
        for l in "$LINK" "$LINK.removed"; do
            if [ -L "$l" ] && ! grep -q "^$l " "$T/before"; then rm -f "$l" && echo "cleanup: removed $l"; fi
        done
    fi
    rm -rf "$T"
}
trap cleanup EXIT

passed=0 failed=0 skipped=0
# Clean up before the last line, which stays "N passed, M failed".
trap 'echo "aborted at line $LINENO"; trap - EXIT; cleanup; echo "$passed passed, $((failed + 1)) failed"; exit 1' ERR
ok()   { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
bad()  {
    failed=$((failed + 1)); printf 'FAIL  %s\n' "$1"
    if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/      | /' | head -n 40; fi
}
skip() { skipped=$((skipped + 1)); printf 'skip  %s\n' "$1"; }
refused() { [ "$rc" -ne 0 ] && grep -q -- "$1" <<<"$out"; }   # the last package.sh failed, saying $1
# check NAME COMMAND...: passes when COMMAND succeeds; on failure shows $out.
check() { local name="$1"; shift; if "$@" >/dev/null 2>&1; then ok "$name"; else bad "$name" "${out:-}"; fi; }
finish() {
    trap - ERR EXIT
    cleanup
    echo
    if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
    [ "$failed" -eq 0 ]
    exit
}

# --- build and look inside ------------------------------------------------------------------------
say "building the package for the system nginx"
rm -f "$ROOT"/build/dist/${PKG}_*.deb
out=$("$ROOT/scripts/package.sh" 2>&1) && rc=0 || rc=$?
deb=$(ls "$ROOT"/build/dist/${PKG}_*.deb 2>/dev/null | head -n1) || true
check "scripts/package.sh builds build/dist/${PKG}_<version>_<arch>.deb" [ "$rc" -eq 0 -a -n "$deb" ]
[ -n "$deb" ] || finish
nginx_version=$("$NGINX" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
abi=$(dpkg-query -W -f='${Provides}' "$(dpkg-query -S "$(readlink -f "$NGINX")" | sed -n '1s/: .*//p')" \
    | grep -o 'nginx-abi-[^ ,]*' || true)
out="$deb"
check "named for the workspace version and the nginx ($nginx_version), for $(dpkg --print-architecture)" \
    [ "$(basename "$deb")" = "${PKG}_$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")-1+nginx${nginx_version}_$(dpkg --print-architecture).deb" ]
out=$(dpkg-deb -f "$deb" Depends)
check "Depends: $abi (what the system nginx provides) first" grep -q "^$abi, libc6 " <<<"$out"
contents=$(dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }')
for f in "${MODULE_FILES[@]}"; do
    out="$contents"
    check "contains /usr/lib/nginx/modules/$f (0644 root)" grep -qx -- "-rw-r--r-- root/root ./usr/lib/nginx/modules/$f" <<<"$contents"
done
for f in "$AVAILABLE" /usr/share/doc/$PKG/copyright /usr/share/doc/$PKG/changelog.Debian.gz \
    /usr/share/doc/$PKG/examples/ase.conf; do
    check "contains $f" grep -qx -- "-rw-r--r-- root/root .$f" <<<"$contents"
done
out=$(grep -vc -e ' ./usr/lib/nginx/modules/' -e ' ./usr/share/nginx/modules-available/' -e " ./usr/share/doc/$PKG/" \
    -e '^d' <<<"$contents" || true)
check "no other file (nothing in /etc: the link is the maintainer scripts')" [ "$out" = 0 ]
out=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$AVAILABLE")
check "mod-http-ase.conf: the three load_module lines, in load order" [ "$(grep -v '^#' <<<"$out")" = "$(
    for m in "${MODULE_FILES[@]}"; do echo "load_module modules/$m;"; done)" ]
out=$(dpkg-deb -I "$deb" 2>&1)
check "has postinst, prerm and postrm" grep -qE 'postinst.*postrm.*prerm' <<<"$(tr '\n' ' ' <<<"$out")"

say "lintian"
out=$(lintian --pedantic -I -E "$deb" 2>&1 | grep -v '^running with root privileges' || true)
printf '%s\n' "${out:-(no tags)}" | sed 's/^/      lintian: /'
errors=$(grep -c '^E:' <<<"$out" || true) warnings=$(grep -c '^W:' <<<"$out" || true)
out=$(grep '^E:' <<<"$out" || true)
check "lintian: no errors ($warnings warnings, shown above)" [ "$errors" -eq 0 ]

say "refusals"
if [ -f "$ROOT/build/vendored/modules/${MODULE_FILES[0]}" ]; then
    out=$("$ROOT/scripts/package.sh" --modules "$ROOT/build/vendored/modules" --nginx "$NGINX" 2>&1) && rc=0 || rc=$?
    check "the vendored nginx's modules with the system nginx $nginx_version: refused, nginx's reason given" \
        refused "do not load into .* version [0-9]* instead of [0-9]*"
else
    skip "modules built for another nginx: refused (no build/vendored/modules; run scripts/build.sh)"
fi
if [ -x "$ROOT/build/vendored/sbin/nginx" ]; then
    out=$("$ROOT/scripts/package.sh" --modules "$ROOT/build/vendored/modules" --nginx "$ROOT/build/vendored/sbin/nginx" 2>&1) \
        && rc=0 || rc=$?
    check "an nginx no Debian package owns: refused (no nginx-abi to depend on)" \
        refused "belongs to no Debian package"
else
    skip "an nginx no Debian package owns: refused (no build/vendored/sbin/nginx; run scripts/build.sh)"
fi
out=$("$ROOT/scripts/package.sh" --modules "$ROOT/build/system/modules" 2>&1) && rc=0 || rc=$?
check "--modules without --nginx: refused" refused "--modules goes with --nginx"

# --- the life of the package on this machine ------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
    skip "install, nginx -t, requests, remove and purge on this machine: not root (dpkg -i needs root)"
    finish
fi
if [ ! -f /etc/debian_version ] || [ ! -d /etc/nginx/modules-enabled ]; then
    skip "install, nginx -t, requests, remove and purge on this machine: not Debian's nginx layout (no /etc/nginx/modules-enabled)"
    finish
fi
if [ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || echo not-installed)" != not-installed ]; then
    bad "$PKG is already on this machine (dpkg -P $PKG first): the install cycle cannot start from a clean state"
    finish
fi

# snapshot FILE: every path under /etc/nginx with its type, mode, owner, link target and content hash.
snapshot() {
    find /etc/nginx -printf '%p %y %m %u:%g %l\n' | sort | while read -r p y rest; do
        if [ "$y" = f ]; then echo "$p $y $rest $(sha256sum <"$p" | cut -c1-64)"; else echo "$p $y $rest"; fi
    done >"$1"
}
# changes: what differs between the snapshot before and now, one "+"/"-" line per entry.
changes() { snapshot "$T/now"; { diff "$T/before" "$T/now" || true; } | sed -n 's/^\([<>]\) /\1/p' | tr '<>' '-+'; }
snapshot "$T/before"
system_t_before=0
"$NGINX" -t >/dev/null 2>&1 && system_t_before=1

say "dpkg -i"
out=$(DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" 2>&1) && rc=0 || rc=$?
installed_by_us=1
check "dpkg -i succeeds" [ "$rc" -eq 0 ]
check "modules-enabled/50-mod-http-ase.conf links to modules-available/mod-http-ase.conf" \
    [ "$(readlink "$LINK")" = "$AVAILABLE" ]
out=$(changes)
check "/etc/nginx: that link is the only change" [ "$out" = "+$LINK l 777 root:root $AVAILABLE" ]
if [ "$system_t_before" -eq 1 ]; then
    out=$("$NGINX" -t 2>&1) || true
    check "nginx -t on the system's own configuration still passes, the modules loaded" "$NGINX" -t
else
    skip "nginx -t on the system's own configuration: it did not pass before the install either"
fi

say "nginx -t and requests through the ASE double, with the packaged example ase.conf"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port) API_PORT=$(free_port)
printf 'abcdefghijklmnopqrstuvwxyz012345\n' >"$T/ase.token"
chmod 0600 "$T/ase.token"
double="$ROOT/target/double/release/ase-double"
[ -x "$double" ] || (cd "$ROOT" && cargo build --release -p ase-double --target-dir "$ROOT/target/double")
"$double" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --token-file "$T/ase.token" \
    --ready-file "$T/ase.json" --log "$T/ase-calls.log" >/dev/null 2>&1 &
double_pid=$!
for _ in $(seq 200); do [ -s "$T/ase.json" ] && break; sleep 0.05; done
ASE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"])' "$T/ase.json")
ADMIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$T/ase.json")
# The example as installed, pointed at the double and the test's token (one node: no backup).
sed -e "s|^ase_server http://10.0.0.5:8000 |ase_server http://$ASE |" -e '/^ase_server http:\/\/10.0.0.6:8000 backup;$/d' \
    -e "s|^ase_token_file /etc/nginx/ase.token;|ase_token_file $T/ase.token;|" \
    "/usr/share/doc/$PKG/examples/ase.conf" >"$T/ase.conf"
out=$(cat "$T/ase.conf")
check "the example ase.conf, installed, took the double's address and the token file" \
    [ "$(grep -c -e "^ase_server http://$ASE max_fails=1 fail_timeout=10s;$" -e "^ase_token_file $T/ase.token;$" \
        -e '^ase_request on;$' -e '^ase_response on;$' "$T/ase.conf")" -eq 4 -a "$(grep -c '^ase_server' "$T/ase.conf")" -eq 1 ]
cat >"$T/nginx.conf" <<EOF
include /etc/nginx/modules-enabled/*.conf;
worker_processes 1;
pid $T/nginx.pid;
error_log $T/error.log notice;
events { worker_connections 64; }
http {
    access_log $T/access.log;
    client_body_temp_path $T/body;
    proxy_temp_path $T/proxy;
    fastcgi_temp_path $T/fastcgi;
    uwsgi_temp_path $T/uwsgi;
    scgi_temp_path $T/scgi;
    include $T/ase.conf;
    server {
        listen 127.0.0.1:$PORT;
        location / { proxy_pass http://127.0.0.1:$API_PORT; }
    }
    server {
        listen 127.0.0.1:$API_PORT;
        ase_request off;
        ase_response off;
        location / { return 200 "the api\n"; }
    }
}
EOF
out=$("$NGINX" -t -c "$T/nginx.conf" -e "$T/error.log" 2>&1) && rc=0 || rc=$?
check "nginx -t passes (the system nginx, modules from modules-enabled/*.conf, the example's directives)" \
    [ "$rc" -eq 0 ]
out=$("$NGINX" -T -c "$T/nginx.conf" -e "$T/error.log" 2>/dev/null | grep '^load_module .*ase' || true)
check "the modules came from the package's modules-enabled link" [ "$out" = "$(
    for m in "${MODULE_FILES[@]}"; do echo "load_module modules/$m;"; done)" ]
out=$("$NGINX" -c "$T/nginx.conf" -e "$T/error.log" 2>&1) && rc=0 || rc=$?
check "the test nginx starts" [ "$rc" -eq 0 ]
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$API_PORT/" && break; sleep 0.05; done
out=$(curl -s -X POST -d '{"kind":"token","value":"bob-token"}' "http://$ADMIN/deny" 2>&1) || true
code() { curl -s -o "$T/body.out" -w '%{http_code}' -H "Authorization: Bearer $1" "http://127.0.0.1:$PORT/orders" || true; }
got=$(code alice-token)
out="status $got: $(cat "$T/body.out" 2>/dev/null); $(tail -n 5 "$T/error.log" 2>/dev/null)"
check "an allowed client: 200 from the API" [ "$got" = 200 -a "$(cat "$T/body.out")" = "the api" ]
got=$(code bob-token)
out="status $got; $(tail -n 5 "$T/error.log" 2>/dev/null)"
check "a client on the ASE's deny list: 403" [ "$got" = 403 ]
# What the double saw: each request checked with the token (a wrong one is a 401, which fails
# open: bob would have passed), the ASE's answers 200 and 403, and both responses reported.
seen() {
    curl -s "http://$ADMIN/records" | python3 -c 'import json,sys
r = json.load(sys.stdin)["records"]
req = sorted("%s/%s" % (x["status"], x["token"]) for x in r if x["kind"] == "request")
resp = sorted(str(x["body"].get("response_code")) for x in r if x["kind"] == "response")
print("checks", *req, "reports", *resp)'
}
want="checks 200/ok 403/ok reports 200 403"
for _ in $(seq 200); do [ "$(seen 2>/dev/null)" = "$want" ] && break; sleep 0.05; done
out=$(seen 2>&1 || true)
check "the ASE double: both requests checked with the token (answered 200, 403), both responses reported" \
    [ "$out" = "$want" ]
if [ -f "$T/nginx.pid" ]; then
    kill -QUIT "$(cat "$T/nginx.pid")" 2>/dev/null || true
    for _ in $(seq 200); do [ -f "$T/nginx.pid" ] || break; sleep 0.05; done
fi
kill "$double_pid" 2>/dev/null || true
double_pid=""

say "dpkg -r, then dpkg -P"
out=$(dpkg -r "$PKG" 2>&1) && rc=0 || rc=$?
check "dpkg -r succeeds" [ "$rc" -eq 0 ]
check "the modules and modules-available/mod-http-ase.conf are gone" \
    [ ! -e /usr/lib/nginx/modules/ngx_ase_common_module.so -a ! -e "$AVAILABLE" ]
out=$(changes)
check "/etc/nginx: as before, but for the link parked as 50-mod-http-ase.conf.removed (Debian's convention)" \
    [ "$out" = "+$LINK.removed l 777 root:root $AVAILABLE" ]
purge_check() {
    out=$(dpkg -P "$PKG" 2>&1) && rc=0 || rc=$?
    check "$1: dpkg -P succeeds" [ "$rc" -eq 0 ]
    out=$(changes)
    check "$1: /etc/nginx identical to before the install" [ -z "$out" ]
    out=$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || true)
    check "$1: dpkg knows nothing of $PKG any more" [ -z "$out" -o "$out" = not-installed ]
}
purge_check "purge after remove"

say "the administrator's choice: disabled stays disabled on upgrade; dpkg -r, dpkg -i enables again"
dpkg_i() { out=$(DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" 2>&1) && rc=0 || rc=$?; }
dpkg_i
check "dpkg -i" [ "$rc" -eq 0 ]
rm -f "$LINK"
dpkg_i
check "dpkg -i over the installed package (the upgrade path) succeeds" [ "$rc" -eq 0 ]
check "it keeps the modules disabled when the administrator deleted the link" [ ! -e "$LINK" -a ! -L "$LINK" ]
ln -s "$AVAILABLE" "$LINK"
out=$(dpkg -r "$PKG" 2>&1) && rc=0 || rc=$?
check "dpkg -r (enabled again by hand before)" [ "$rc" -eq 0 ]
dpkg_i
check "dpkg -i after a remove succeeds" [ "$rc" -eq 0 ]
out=$(changes)
check "after a remove, a new install enables the modules again (no .removed link left)" \
    [ "$out" = "+$LINK l 777 root:root $AVAILABLE" ]
purge_check "purge of an installed package"

finish
