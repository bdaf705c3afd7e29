#!/usr/bin/env bash
# Tests scripts/install.sh: the unit tests of its nginx configuration tokenizer and planner
# (tests/install/test_*.py), then install -> second install -> uninstall on copies of real
# nginx layouts (tests/install/layouts/), each checked with the real `nginx -t`, plus the
# refusals (dry run, bad ASE URL, token file, version and --with-compat checks, ...), and
# the install and the uninstall killed (SIGKILL) at every point where they change a file.
#
# The kill test uses a test-only hook of the tool: NGX_ASE_INSTALL_TEST_KILL_AFTER=N makes it
# send itself SIGKILL right after its Nth file change (scripts/install/fileops.py).
#
# Needs the modules built for the system nginx (scripts/build.sh --nginx system). Touches
# nothing outside a temporary directory, except that `nginx -t` opens the log and pid paths
# compiled into Debian's nginx, as it always does. Last line: "N passed, M failed".
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "no nginx on PATH (apt-get install nginx)"
MODS="$ROOT/build/system/modules"
for m in "${MODULE_FILES[@]}"; do
    [ -f "$MODS/$m" ] || die "$MODS/$m not found: run scripts/build.sh --nginx system first"
done
# The Debian layout and the existing-load_module layout load the echo module; the lua layout
# loads the Lua module (OpenResty's lua-nginx-module, as Debian packages it).
ensure_packages libnginx-mod-http-echo libnginx-mod-http-lua
ECHO_SO=/usr/lib/nginx/modules/ngx_http_echo_module.so
[ -f "$ECHO_SO" ] || die "$ECHO_SO not found"
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || die "the Lua module is not installed"

INSTALL="$ROOT/scripts/install.sh"
LAYOUTS="$ROOT/tests/install/layouts"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ngx-ase-install-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

passed=0 failed=0
trap 'echo "aborted at line $LINENO"; echo "$passed passed, $((failed + 1)) failed"' ERR
ok()  { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
bad() {
    failed=$((failed + 1)); printf 'FAIL  %s\n' "$1"
    if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/      | /' | head -n 40; fi
}
# check NAME COMMAND...: passes when COMMAND succeeds; on failure shows the last install output.
check() { local name="$1"; shift; if "$@" >/dev/null 2>&1; then ok "$name"; else bad "$name" "${out:-}"; fi; }
has() { grep -qE -- "$1" <<<"$out"; }
refused() { [ "$rc" -ne 0 ] && has "$1"; }     # the last install failed, saying $1 (a regex)
succeeded() { [ "$rc" -eq 0 ] && has "$1"; }   # the last install succeeded, saying $1
says_all() { local p; for p in "$@"; do has "$p" || return 1; done; }
only_crlf() { ! grep -qv $'\r$' "$1"; }
same() { diff -r --no-dereference "$1" "$2"; }
# Mode, owner, group, size and link count of every file of a tree (cp -a keeps them in the copy).
stat_tree() { (cd "$1" && find . -printf '%p %m %U %G %s %n %y\n' | sort); }
same_stat() { [ "$(stat_tree "$1")" = "$(stat_tree "$2")" ]; }
empty_dir() { [ -z "$(ls -A "$1" 2>/dev/null)" ]; }

# --- unit tests ---------------------------------------------------------------------------------
say "unit tests of the tokenizer and the planner"
if out=$(cd "$ROOT" && python3 -B -m unittest discover -s tests/install 2>&1); then
    n=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} .*/\1/p' <<<"$out")
    passed=$((passed + ${n:-0})); printf 'ok    %s unit tests (python3 -m unittest discover -s tests/install)\n' "$n"
else
    bad "unit tests (python3 -m unittest discover -s tests/install)" "$out"
fi

# --- helpers ------------------------------------------------------------------------------------
TOKEN="$TMP/token"
printf 'abcdefghijklmnopqrstuvwxyz012345\n' >"$TOKEN"
chmod 600 "$TOKEN"

# prepare LAYOUT [KEY]: copies the layout to $TMP/KEY/conf with its absolute Debian paths
# (/etc/nginx, /var/log/nginx, /run/nginx.pid) pointed into the copy, and keeps a pristine
# copy in $TMP/KEY/orig. Sets W, CONF, BASE (the install flags naming the copy), NGX_T.
prepare() {
    local layout="$1" key="${2:-$1}"
    W="$TMP/$key"
    rm -rf "$W"
    mkdir -p "$W/mods" "$W/log" "$W/run" "$W/prefix"
    cp -a "$LAYOUTS/$layout" "$W/conf"
    find "$W/conf" -type f -exec sed -i -e "s#/etc/nginx#$W/conf#g" -e "s#/var/log/nginx#$W/log#g" \
        -e "s#/run/nginx.pid#$W/run/nginx.pid#g" {} +
    CONF="$W/conf/nginx.conf"
    if [ -n "${prepare_hook:-}" ]; then "$prepare_hook"; fi
    cp -a "$W/conf" "$W/orig"
    BASE=(--conf "$CONF" --modules-dir "$W/mods" --backup-dir "$W/backups")
    NGX_T=(-c "$CONF" -e stderr)
    # Debian's own layout loads modules/... relative to the compiled prefix; the others
    # keep their pid file in a prefix of their own.
    if [ "$layout" != debian ]; then BASE+=(--prefix "$W/prefix"); NGX_T+=(-p "$W/prefix/"); fi
}
install() { out=$("$INSTALL" "${BASE[@]}" "$@" 2>&1) && rc=0 || rc=$?; }
nginx_t() { "$NGINX" -t "${NGX_T[@]}"; }
nginx_dump() { "$NGINX" -T "${NGX_T[@]}" 2>/dev/null; }
our_load_modules() { nginx_dump | sed -n 's|^load_module .*/\(ngx_[a-z_]*ase[a-z_]*_module\.so\);$|\1|p' | tr '\n' ' '; }
inodes() { stat -c '%n %i' "$W"/mods/* 2>/dev/null || true; }
backups() { find "$W/backups" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l || true; }
no_change() { same "$W/orig" "$W/conf" && empty_dir "$W/mods"; }

# cycle LAYOUT WANT_ASE_REQUEST INSTALL-FLAGS...: install, nginx -t, second install changes
# nothing, uninstall gives back the original bytes. WANT_ASE_REQUEST: how many
# `ase_request on;` lines the installed configuration has (nginx -T).
cycle() {
    local layout="$1" want="$2"; shift 2
    say "layout $layout"
    prepare "$layout"
    nginx_t >/dev/null 2>&1 || { bad "$layout: nginx -t on the untouched copy" "$(nginx_t 2>&1)"; return; }
    install "$@"
    check "$layout: install" [ "$rc" -eq 0 ]
    check "$layout: nginx -t after install" nginx_t
    check "$layout: the three load_module lines, once each, in order" \
        [ "$(our_load_modules)" = "${MODULE_FILES[*]} " ]
    check "$layout: ase_request on in $want place(s)" [ "$(nginx_dump | grep -c 'ase_request on;')" -eq "$want" ]
    check "$layout: modules installed" [ "$(cd "$W/mods" && echo *)" = "${MODULE_FILES[*]}" ]
    local hook="after_install_${layout//-/_}"
    if declare -F "$hook" >/dev/null; then "$hook"; fi
    rm -rf "$W/after1" && cp -a "$W/conf" "$W/after1"
    local ino nbk
    ino=$(inodes) nbk=$(backups)
    install "$@"
    check "$layout: second install succeeds, says nothing changed" has "nothing changed"
    check "$layout: second install changed no byte" same "$W/after1" "$W/conf"
    check "$layout: second install kept the module files (same inodes)" [ "$(inodes)" = "$ino" ]
    check "$layout: second install made no backup" [ "$(backups)" = "$nbk" ]
    check "$layout: nginx -t after second install" nginx_t
    install --uninstall
    check "$layout: uninstall" [ "$rc" -eq 0 ]
    check "$layout: after uninstall the tree is byte-identical to the original" same "$W/orig" "$W/conf"
    check "$layout: after uninstall every file has its mode, owner, size and links" same_stat "$W/orig" "$W/conf"
    check "$layout: uninstall removed the modules" empty_dir "$W/mods"
    check "$layout: nginx -t after uninstall" nginx_t
}

after_install_debian() {
    check "debian: load_module lines in modules-enabled/50-ngx-ase.conf" grep -q ngx_ase_common_module "$W/conf/modules-enabled/50-ngx-ase.conf"
    check "debian: ase.conf in conf.d/" grep -q '^ase_token_file ' "$W/conf/conf.d/ase.conf"
    check "debian: nginx.conf itself untouched" cmp "$W/orig/nginx.conf" "$W/conf/nginx.conf"
    check "debian: sites-enabled/default is still a symlink" [ -L "$W/conf/sites-enabled/default" ]
    check "debian: sites-available/default keeps its mode" \
        [ "$(stat -c %a "$W/orig/sites-available/default")" = "$(stat -c %a "$W/conf/sites-available/default")" ]
    check "debian: timestamped backup of the changed file" \
        cmp "$W/orig/sites-available/default" "$(ls -d "$W"/backups/*-install)$W/conf/sites-available/default"
}
after_install_nginx_org() {
    check "nginx-org: ase.conf next to nginx.conf, included in http" grep -q '^ *include ase.conf;' "$W/conf/nginx.conf"
    check "nginx-org: backup servers and max_fails" grep -q '^ase_server http://127.0.0.1:9998 backup max_fails=3 fail_timeout=10s;' "$W/conf/ase.conf"
}
after_install_includes() {
    check "includes: files outside the include globs untouched" cmp "$W/orig/vhosts/c.conf" "$W/conf/vhosts/c.conf"
    check "includes: the CRLF file keeps CRLF line ends" only_crlf "$W/conf/vhosts/b.vhost"
}
after_install_lua() {
    check "lua: every Lua block byte-identical (no line inserted into one)" \
        [ "$(sed '/# ngx-ase: managed begin/,/# ngx-ase: managed end/d' "$CONF")" = "$(cat "$W/orig/nginx.conf")" ]
    check "lua: ase_request in the location with the Lua block, not in it" \
        grep -Pzq 'location / \{\n *# ngx-ase: managed begin \(location / #[0-9]+\)\n *ase_request on;' "$CONF"
}
after_install_existing_load_module() {
    check "existing-load-module: its own load_module stays first" \
        [ "$(grep -m1 '^load_module' "$CONF")" = "load_module $ECHO_SO;" ]
}

# --- the layouts ---------------------------------------------------------------------------------
cycle debian 1 --ase-server http://127.0.0.1:9999 --ase-backup http://127.0.0.1:9998 --token-file "$TOKEN" \
    --fail-mode closed --connect-timeout 100ms --timeout 1s --enable-location /
cycle nginx-org 1 --ase-server http://127.0.0.1:9999 --ase-backup http://127.0.0.1:9998 --max-fails 3 \
    --fail-timeout 10s --enable-location /
cycle tricky 2 --ase-server http://127.0.0.1:9999 --enable-location /api --enable-location "/with space"
cycle includes 2 --ase-server http://127.0.0.1:9999 --enable-location /api
cycle split 1 --ase-server http://127.0.0.1:9999 --enable-location /api
cycle existing-load-module 1 --ase-server http://127.0.0.1:9999 --enable-all
cycle lua 2 --ase-server http://127.0.0.1:9999 --enable-location / --enable-location /api

# --- refusals and other paths ---------------------------------------------------------------------
say "dry run"
prepare nginx-org dry
install --ase-server http://127.0.0.1:9999 --enable-location / --dry-run
check "dry run: succeeds and prints the diff" succeeded "^[+]load_module .*ngx_ase_common_module.so;"
check "dry run: changes nothing" no_change
check "dry run: backs up nothing" [ ! -e "$W/backups" ]

say "nginx -t failing on the result"
prepare nginx-org badurl
install --ase-server ftp://bad.example --enable-location /
check "bad ASE URL: install fails" [ "$rc" -ne 0 ]
check "bad ASE URL: prints nginx's message" says_all "nginx -t failed" "emerg.*ase_server"
check "bad ASE URL: every file restored, no module left" no_change
check "bad ASE URL: the backup was taken first" cmp "$W/orig/nginx.conf" "$(ls -d "$W"/backups/*-install)$CONF"

say "refusals that change nothing"
prepare nginx-org refuse
chmod 644 "$TOKEN"
install --ase-server http://127.0.0.1:9999 --token-file "$TOKEN"
chmod 600 "$TOKEN"
check "world-readable token file: refused" refused "world readable"
install --ase-server http://127.0.0.1:9999 --token-file "$TMP/no-such-token"
check "missing token file: refused" refused "no such file"
install --ase-server http://127.0.0.1:9999 --enable-location /no-such-location
check "unknown --enable-location: refused" refused "no location /no-such-location"
install
check "no --ase-server: refused" refused "ase-server"
install --uninstall
check "uninstall when not installed: nothing to do" succeeded "nothing to do"

# An nginx without --with-compat, and one the modules were not built for: a wrapper around the
# real binary that changes what -V says, or what -t says about the modules.
mkdir -p "$TMP/fake"
cat >"$TMP/fake/nginx-nocompat" <<EOF
#!/bin/sh
if [ "\$1" = -V ]; then "$NGINX" -V 2>&1 | sed 's/ --with-compat//' >&2; exit 0; fi
exec "$NGINX" "\$@"
EOF
cat >"$TMP/fake/nginx-other-version" <<EOF
#!/bin/sh
if [ "\$1" = -V ]; then "$NGINX" -V 2>&1 | sed 's|nginx/[0-9.]*|nginx/1.24.0|' >&2; exit 0; fi
if [ "\$1" = -t ] && grep -q '^events {}' "\$3"; then
    echo "nginx: [emerg] module \"\$(sed -n '1s/.*"\(.*\)".*/\1/p' "\$3")\" version 1022001 instead of 1024000 in \$3:1" >&2
    exit 1
fi
exec "$NGINX" "\$@"
EOF
chmod +x "$TMP"/fake/*
install --nginx "$TMP/fake/nginx-nocompat" --ase-server http://127.0.0.1:9999
check "nginx without --with-compat: refused" refused "with-compat"
install --nginx "$TMP/fake/nginx-other-version" --ase-server http://127.0.0.1:9999
check "modules built for another nginx version: refused" \
    refused "built for nginx 1.22.1, but .* is nginx 1.24.0"
if [ -x "$ROOT/build/vendored/sbin/nginx" ]; then
    install --nginx "$ROOT/build/vendored/sbin/nginx" --ase-server http://127.0.0.1:9999
    check "system-built modules into the vendored nginx 1.28: refused" \
        refused "built for nginx 1.22.1, but .* is nginx 1.28"
fi
check "refusals: nothing was changed by any of them" no_change
check "refusals: no backup taken" [ ! -e "$W/backups" ]

say "a configuration that fails nginx -t before the install"
prepare nginx-org broken
printf 'no_such_directive on;\n' >>"$CONF" && cp "$CONF" "$W/orig/nginx.conf"
install --ase-server http://127.0.0.1:9999
check "already broken configuration: refused, unchanged" refused "before any change"
check "already broken configuration: nothing changed" no_change

say "an unmanaged load_module of our module"
prepare nginx-org unmanaged
sed -i "1i load_module $MODS/ngx_ase_common_module.so;" "$CONF" && cp "$CONF" "$W/orig/nginx.conf"
install --ase-server http://127.0.0.1:9999
check "unmanaged load_module of ngx-ase: refused" refused "already loads"
check "unmanaged load_module of ngx-ase: nothing changed" no_change

say "changing the settings with a second install"
prepare nginx-org change
install --ase-server http://127.0.0.1:9999 --enable-location /
install --ase-server http://127.0.0.1:7777 --enable-all --timeout 2s
check "new settings: install" [ "$rc" -eq 0 ]
check "new settings: ase.conf has the new server" grep -q '^ase_server http://127.0.0.1:7777;' "$W/conf/ase.conf"
check "new settings: ase.conf lost the old server" [ "$(grep -c 9999 "$W/conf/ase.conf")" -eq 0 ]
check "new settings: the location lines were taken out" [ "$(grep -c "ase_request on;" "$CONF")" -eq 0 ]
check "new settings: load_module lines still there once" [ "$(our_load_modules)" = "${MODULE_FILES[*]} " ]
check "new settings: nginx -t" nginx_t
install --uninstall
check "new settings: uninstall gives back the original" no_change

say "replacing installed modules"
prepare nginx-org replace
mkdir -p "$W/src" && cp "$MODS"/*.so "$W/src/"
install --ase-server http://127.0.0.1:9999 --modules-from "$W/src"
check "first install from a copy of the modules" [ "$rc" -eq 0 ]
before=$(stat -c %i "$W/mods/ngx_http_ase_response_module.so" || true)
other=$(stat -c %i "$W/mods/ngx_ase_common_module.so" || true)
printf '\0' >>"$W/src/ngx_http_ase_response_module.so"  # a "rebuilt" module (trailing byte: still loads)
install --ase-server http://127.0.0.1:9999 --modules-from "$W/src"
check "replaced module: install succeeds" [ "$rc" -eq 0 ]
check "replaced module: says restart, not reload" succeeded "RESTART nginx .* do NOT reload"
check "replaced module: a new inode" [ "$(stat -c %i "$W/mods/ngx_http_ase_response_module.so")" != "$before" ]
check "replaced module: the content of the new build" \
    cmp "$W/mods/ngx_http_ase_response_module.so" "$W/src/ngx_http_ase_response_module.so"
check "replaced module: unchanged modules keep their inode" [ "$(stat -c %i "$W/mods/ngx_ase_common_module.so")" = "$other" ]
check "replaced module: nginx -t" nginx_t
install --uninstall
check "replaced module: uninstall gives back the original" no_change

say "uninstall after the operator edited a changed file"
prepare debian edited
install --ase-server http://127.0.0.1:9999 --enable-location /
sed -i '1i # edited by the operator after the install' "$W/conf/sites-available/default"
sed -i '1i # edited by the operator after the install' "$W/orig/sites-available/default"
install --uninstall
check "edited since: uninstall succeeds with a warning" succeeded "edited since"
check "edited since: only ngx-ase's lines taken out" no_change

say "defaults from nginx -V (the nginx on PATH, its --conf-path and --modules-path)"
prepare debian defaults
mkdir -p "$TMP/fakebin"
cat >"$TMP/fakebin/nginx" <<EOF
#!/bin/sh
if [ "\$1" = -V ]; then
    "$NGINX" -V 2>&1 | sed -e 's#--conf-path=[^ ]*#--conf-path=$CONF#' -e 's#--modules-path=[^ ]*#--modules-path=$W/mods#' >&2
    exit 0
fi
exec "$NGINX" "\$@"
EOF
chmod +x "$TMP/fakebin/nginx"
out=$(PATH="$TMP/fakebin:$PATH" "$INSTALL" --ase-server=http://127.0.0.1:9999 --backup-dir="$W/backups" 2>&1) && rc=0 || rc=$?
check "defaults: install into nginx -V's conf-path and modules-path" \
    succeeded "installing ngx-ase into $CONF \(nginx [0-9.]+, $TMP/fakebin/nginx; modules to $W/mods\)"
check "defaults: modules installed" [ "$(cd "$W/mods" && echo *)" = "${MODULE_FILES[*]}" ]
check "defaults: nginx -t" nginx_t
out=$(PATH="$TMP/fakebin:$PATH" "$INSTALL" --uninstall --backup-dir="$W/backups" 2>&1) && rc=0 || rc=$?
check "defaults: uninstall" [ "$rc" -eq 0 ]
check "defaults: uninstall gives back the original" no_change

say "--conf on a copy whose includes name the real directory"
prepare debian outside
# $W/conf plays the real /etc/nginx; $W/copy is the operator's copy of it, whose nginx.conf
# still includes $W/conf/modules-enabled/*.conf, $W/conf/conf.d/*.conf, ... by absolute path.
cp -a "$W/conf" "$W/copy" && cp -a "$W/copy" "$W/copy-orig"
COPY=(--conf "$W/copy/nginx.conf" --modules-dir "$W/mods" --backup-dir "$W/backups")
out=$("$INSTALL" "${COPY[@]}" --ase-server http://127.0.0.1:9999 --enable-location / 2>&1) && rc=0 || rc=$?
check "outside the --conf directory: refused, naming the first file outside" \
    refused "^error: $W/conf/modules-enabled/50-ngx-ase.conf is outside $W/copy, the directory of --conf"
check "outside the --conf directory: the refusal is one line" [ "$(grep -c . <<<"$out")" -eq 2 -a "$(grep -c '^error:' <<<"$out")" -eq 1 ]
check "outside the --conf directory: the real directory is unchanged, no module installed" no_change
check "outside the --conf directory: the copy is unchanged" same "$W/copy-orig" "$W/copy"
out=$("$INSTALL" "${COPY[@]}" --ase-server http://127.0.0.1:9999 --enable-location / --dry-run 2>&1) && rc=0 || rc=$?
check "outside the --conf directory: --dry-run refuses too" refused "is outside $W/copy"
out=$("$INSTALL" "${COPY[@]}" --ase-server http://127.0.0.1:9999 --enable-location / --allow-outside-conf-dir 2>&1) \
    && rc=0 || rc=$?
check "--allow-outside-conf-dir: install succeeds" [ "$rc" -eq 0 ]
check "--allow-outside-conf-dir: the files outside were patched" \
    grep -q ngx_ase_common_module "$W/conf/modules-enabled/50-ngx-ase.conf"
check "--allow-outside-conf-dir: nginx -t on the copy" "$NGINX" -t -c "$W/copy/nginx.conf" -e stderr
out=$("$INSTALL" "${COPY[@]}" --uninstall 2>&1) && rc=0 || rc=$?
check "--allow-outside-conf-dir: uninstall succeeds without the flag" [ "$rc" -eq 0 ]
check "--allow-outside-conf-dir: uninstall gives back the real directory, no module left" no_change
check "--allow-outside-conf-dir: uninstall gives back the copy" same "$W/copy-orig" "$W/copy"
check "--allow-outside-conf-dir: stat-identical" same_stat "$W/orig" "$W/conf"
out=$("$INSTALL" --conf "$W/copy/./nginx.conf" --modules-dir "$W/mods" --backup-dir "$W/backups" \
    --ase-server http://127.0.0.1:9999 --enable-location / 2>&1) && rc=0 || rc=$?
check "outside the --conf directory: a path with ./ in it is refused as well" refused "is outside $W/copy"
check "outside the --conf directory: still nothing changed" no_change

say "a Lua block added after the install"
prepare lua lua-later
install --ase-server http://127.0.0.1:9999 --enable-location /
for f in "$CONF" "$W/orig/nginx.conf"; do
    sed -i 's|^        listen 127.0.0.1:8080;|&\n        location /later { content_by_lua_block { ngx.say("} {") } }|' "$f"
done
install --uninstall
check "Lua block added after the install: uninstall succeeds" [ "$rc" -eq 0 ]
check "Lua block added after the install: original restored" no_change
check "Lua block added after the install: nginx -t" nginx_t

# kill_sweep NAME LAYOUT [FLAGS...]: for N = 1, 2, ...: on a fresh copy of LAYOUT, the install is
# killed (SIGKILL) right after its Nth file change; nginx -t must still pass, running the same
# install again must succeed, and an uninstall must give back the original bytes. Then the
# same for an uninstall killed after its Nth change, and for a second install with other
# settings (change_flags). Stops at the first N the run outlives.
# The "change" phase: a second install with other settings and another modules directory.
change_flags() { CHANGE=(--timeout 2s --enable-all --modules-dir "$TMP/kill-$1/mods2"); }
KILL_T=1  # whether nginx -t must pass right after a kill (not while an in-place rewrite is half done)
kill_run() { out=$(NGX_ASE_INSTALL_TEST_KILL_AFTER="$1" "$INSTALL" "${BASE[@]}" "${@:2}" 2>&1) && rc=0 || rc=$?; }
kill_sweep() {
    local name="$1" layout="$2" n problems points; shift 2
    change_flags "$name"
    say "$name: install and uninstall killed at every file change"
    for phase in install uninstall change; do
        n=1 problems="" points=0
        while [ "$n" -lt 200 ]; do
            prepare "$layout" "kill-$name"
            if [ "$phase" = install ]; then
                kill_run "$n" "$@"
            else
                install "$@"; [ "$rc" -eq 0 ] || { problems+=" [install before the kill failed: $out]"; break; }
                if [ "$phase" = uninstall ]; then kill_run "$n" "$@" --uninstall; else kill_run "$n" "$@" "${CHANGE[@]}"; fi
            fi
            [ "$rc" -eq 137 ] || { [ "$rc" -eq 0 ] || problems+=" [N=$n: not killed, rc $rc: $out]"; break; }
            points=$((points + 1))
            if [ "$KILL_T" -eq 1 ] && ! nginx_t >/dev/null 2>&1; then
                problems+=" [N=$n: nginx -t fails after the kill: $(nginx_t 2>&1 | tail -n2)]"
            fi
            case "$phase" in
                install) install "$@" ;;
                uninstall) install "$@" --uninstall ;;
                change) install "$@" "${CHANGE[@]}" ;;
            esac
            [ "$rc" -eq 0 ] || problems+=" [N=$n: running the same $phase again failed: $out]"
            nginx_t >/dev/null 2>&1 || problems+=" [N=$n: nginx -t fails after the re-run]"
            if [ "$phase" = change ] && [ "$(nginx_dump | grep -c 'ase_timeout 2s;')" -eq 0 ]; then
                problems+=" [N=$n: the changed settings are not in place after the re-run]"
            fi
            if [ "$phase" != uninstall ]; then install --uninstall; fi
            [ "$rc" -eq 0 ] || problems+=" [N=$n: the final uninstall failed: $out]"
            same "$W/orig" "$W/conf" >/dev/null || problems+=" [N=$n: not byte-identical after the final uninstall]"
            empty_dir "$W/mods" || problems+=" [N=$n: modules left]"
            [ ! -e "$W/newdir" ] && [ ! -e "$W/mods2" ] || problems+=" [N=$n: a created modules directory was left]"
            ls "$W"/conf/.*ngx-ase-tmp >/dev/null 2>&1 && problems+=" [N=$n: a *.ngx-ase-tmp file was left]"
            if [ -e "$W/nginx.conf.link" ]; then
                [ "$(stat -c %h "$CONF")" -eq 2 ] && cmp -s "$CONF" "$W/nginx.conf.link" \
                    || problems+=" [N=$n: the hard link of nginx.conf was broken]"
            fi
            n=$((n + 1))
        done
        out="$problems"
        check "$name: $phase killed at each of its $points file changes: re-run succeeds, nginx -t, original restored" \
            [ -z "$problems" -a "$points" -gt 5 ]
    done
}
kill_sweep debian debian --ase-server http://127.0.0.1:9999 --token-file "$TOKEN" --enable-location /
kill_sweep nginx-org nginx-org --ase-server http://127.0.0.1:9999 --enable-location / --enable-location /50x.html \
    --modules-dir "$TMP/kill-nginx-org/newdir/modules"
after_prepare_links() { ln "$CONF" "$W/nginx.conf.link"; }
KILL_T=0
prepare_hook=after_prepare_links kill_sweep hard-link nginx-org --ase-server http://127.0.0.1:9999 --enable-location /
KILL_T=1

say "another command after an interrupted install"
prepare nginx-org other-cmd
kill_run 8 --ase-server http://127.0.0.1:9999 --enable-location /
check "interrupted install: killed" [ "$rc" -eq 137 ]
rm -rf "$W/killed" && cp -a "$W/conf" "$W/killed"
install --ase-server http://127.0.0.1:9999 --enable-location / --dry-run
check "interrupted install: --dry-run refuses, saying what to do" refused "interrupted before it finished: run the command without --dry-run"
check "interrupted install: --dry-run changed nothing" same "$W/killed" "$W/conf"
install --uninstall
check "interrupted install: --uninstall undoes it, saying so" succeeded "last install was interrupted"
check "interrupted install: --uninstall gives back the original" no_change
check "interrupted install: stat-identical" same_stat "$W/orig" "$W/conf"

say "SIGINT, SIGTERM and SIGHUP put every file back"
cat >"$TMP/fake/nginx-slow" <<EOF2
#!/bin/sh
# nginx -t on the patched configuration waits, so that the test can signal the install then.
if [ "\$1" = -t ] && grep -q "ngx-ase: managed" "\$3" 2>/dev/null; then touch "$TMP/slow-flag"; exec sleep 60; fi
exec "$NGINX" "\$@"
EOF2
chmod +x "$TMP/fake/nginx-slow"
for sig in INT TERM HUP; do
    prepare nginx-org "sig$sig"
    rm -f "$TMP/slow-flag"
    "$INSTALL" "${BASE[@]}" --nginx "$TMP/fake/nginx-slow" --ase-server http://127.0.0.1:9999 --enable-location / \
        >"$W/out" 2>&1 &
    pid=$!
    for _ in $(seq 600); do [ -e "$TMP/slow-flag" ] && break; sleep 0.1; done
    kill -"$sig" "$pid"
    wait "$pid" && rc=0 || rc=$?
    out=$(cat "$W/out")
    check "SIG$sig during the install: it stops, saying so" refused "interrupted by SIG$sig"
    check "SIG$sig during the install: every file put back, no module left" no_change
    check "SIG$sig during the install: no state file left" [ -z "$(ls -A "$W/conf" | grep ngx-ase-state)" ]
done

say "two main files in one directory"
prepare nginx-org two
cp "$CONF" "$W/conf/nginx-canary.conf" && cp "$CONF" "$W/orig/nginx-canary.conf"
CANARY=(--conf "$W/conf/nginx-canary.conf" --modules-dir "$W/mods" --backup-dir "$W/backups" --prefix "$W/prefix")
install --ase-server http://127.0.0.1:9999 --enable-location /
out=$("$INSTALL" "${CANARY[@]}" --ase-server http://127.0.0.1:7777 --enable-location / 2>&1) && rc=0 || rc=$?
check "two main files: install into the second succeeds" [ "$rc" -eq 0 ]
check "two main files: the first install is still in place" grep -q '^ase_server http://127.0.0.1:9999;' "$W/conf/ase.conf"
check "two main files: the second has its own ase file" grep -q '^ase_server http://127.0.0.1:7777;' "$W/conf/ase.nginx-canary.conf"
check "two main files: one state file each" [ "$(ls -A "$W/conf" | grep -c '^.ngx-ase-state')" -eq 2 ]
check "two main files: nginx -t on the first" nginx_t
check "two main files: nginx -t on the second" "$NGINX" -t -c "$W/conf/nginx-canary.conf" -p "$W/prefix/" -e stderr
out=$("$INSTALL" "${CANARY[@]}" --uninstall 2>&1) && rc=0 || rc=$?
check "two main files: uninstalling the second keeps the modules the first needs" \
    [ "$rc" -eq 0 -a "$(cd "$W/mods" && echo *)" = "${MODULE_FILES[*]}" ]
check "two main files: the second is back to its original" cmp "$W/orig/nginx-canary.conf" "$W/conf/nginx-canary.conf"
check "two main files: nginx -t on the first after that" nginx_t
install --uninstall
check "two main files: both uninstalled, everything as before" no_change

say "two identical inserted blocks plus an edit next to them"
prepare nginx-org dup
printf 'pid nginx.pid;\nevents {}\nhttp {\n    server {\n        listen 127.0.0.1:8081;\n        location / {\n        }\n    }\n    server {\n        listen 127.0.0.1:8082;\n        location / {\n        }\n    }\n}\n' \
    | tee "$CONF" >"$W/orig/nginx.conf"
install --ase-server http://127.0.0.1:9999 --enable-location /
check "duplicates: install" [ "$rc" -eq 0 ]
for f in "$CONF" "$W/orig/nginx.conf"; do sed -i 's|^    server {|    # the operator was here\n&|' "$f"; done
install --ase-server http://127.0.0.1:9999 --enable-location /
check "duplicates plus an edit: re-install succeeds" [ "$rc" -eq 0 ]
check "duplicates plus an edit: nginx -t" nginx_t
install --uninstall
check "duplicates plus an edit: uninstall succeeds" [ "$rc" -eq 0 ]
check "duplicates plus an edit: only ngx-ase's lines taken out" no_change
install --ase-server http://127.0.0.1:9999 --enable-location /
# The operator takes one inserted block out by hand: the uninstall takes out the rest.
python3 - "$CONF" <<'PY'
import re, sys
p = sys.argv[1]; s = open(p).read()
s = re.sub(r" *# ngx-ase: managed begin \(location / #\d+\)\n.*?# ngx-ase: managed end \(location / #\d+\)\n", "", s, count=1, flags=re.S)
open(p, "w").write(s)
PY
install --uninstall
check "a block taken out by hand: uninstall succeeds, saying so" succeeded "already taken out by hand"
check "a block taken out by hand: original restored" no_change

say "a syntax error the operator added after the install"
prepare nginx-org syntax
install --ase-server http://127.0.0.1:9999 --enable-location /
printf '}\n' >>"$CONF"
want=$(wc -l <"$CONF")
install --ase-server http://127.0.0.1:9999 --enable-location /
check "syntax error: refused, quoting the line of the file as it is ($want)" refused "unexpected \"}\" in $CONF:$want\$"

say "managed lines taken out by hand and the state file deleted"
prepare nginx-org orphans
install --ase-server http://127.0.0.1:9999 --enable-location /
python3 - "$CONF" <<'PY'
import re, sys
p = sys.argv[1]; s = open(p).read()
open(p, "w").write(re.sub(r" *# ngx-ase: managed begin \(.*?# ngx-ase: managed end \([^)]*\)\n", "", s, flags=re.S))
PY
rm "$W"/conf/.ngx-ase-state.*
install --ase-server http://127.0.0.1:9999 --enable-location /
check "orphaned ase.conf and modules: the next install takes them over" \
    succeeded "ase.conf was left by an earlier install" && check "orphaned modules taken over" has "module.so was left"
check "orphaned files: nginx -t" nginx_t
install --uninstall
check "orphaned files: uninstall removes them too" no_change

say "operator edits to ase.conf"
prepare nginx-org asecf
install --ase-server http://127.0.0.1:9999
printf 'ase_keepalive 8;\n' >>"$W/conf/ase.conf"
install --ase-server http://127.0.0.1:7777
check "ase.conf edited below the managed lines: re-install succeeds, keeping them" succeeded "keeping the lines you added"
check "ase.conf edited: the new server is in" grep -q '^ase_server http://127.0.0.1:7777;' "$W/conf/ase.conf"
check "ase.conf edited: the operator's line is still there" grep -q '^ase_keepalive 8;' "$W/conf/ase.conf"
check "ase.conf edited: nginx -t" nginx_t
install --ase-server http://127.0.0.1:7777
check "ase.conf edited: same flags again change nothing" succeeded "nothing changed"
sed -i 's|^ase_server http://127.0.0.1:7777;|ase_server http://127.0.0.1:1;|' "$W/conf/ase.conf"
cp "$W/conf/ase.conf" "$W/ase.conf.edited"
install --ase-server http://127.0.0.1:5555
check "ase.conf managed lines edited: refused with the diff" \
    refused "edited by hand" && check "ase.conf managed lines edited: the diff shows the change" \
    says_all '^-ase_server http://127.0.0.1:7777;' '^\+ase_server http://127.0.0.1:1;'
check "ase.conf managed lines edited: the file is left as it is" cmp "$W/ase.conf.edited" "$W/conf/ase.conf"
install --uninstall
check "ase.conf edited: uninstall says its copy is in the backup" succeeded "lines you added"
check "ase.conf edited: uninstall gives back the original" no_change

say "hard links and extended attributes survive"
prepare debian links
ln "$W/conf/sites-available/default" "$W/default.link"
# An extended attribute: user.* where the file system takes it, else trusted.* (root; tmpfs
# before Linux 6.6 has no user.* attributes).
XATTR=user.ngx-ase-test
set_xattr() {
    python3 -c 'import os, sys; os.setxattr(sys.argv[1], sys.argv[2], b"label")' "$1" "$XATTR" 2>/dev/null && return
    XATTR=trusted.ngx-ase-test
    python3 -c 'import os, sys; os.setxattr(sys.argv[1], sys.argv[2], b"label")' "$1" "$XATTR"
}
set_xattr "$CONF"
stat_of() { stat -c '%i %h %a %u %g %s' "$1"; }
xattr_of() { python3 -c 'import os, sys; print(os.getxattr(sys.argv[1], sys.argv[2]).decode())' "$1" "$XATTR" 2>/dev/null; }
before_default=$(stat_of "$W/conf/sites-available/default") before_conf=$(stat_of "$CONF")
install --ase-server http://127.0.0.1:9999 --enable-location / --enable-all
check "hard link: install" [ "$rc" -eq 0 ]
check "hard link: the changed file is still the linked inode" cmp "$W/default.link" "$W/conf/sites-available/default"
check "hard link: link count still 2" [ "$(stat -c %h "$W/conf/sites-available/default")" -eq 2 ]
install --uninstall
check "hard link: uninstall restores the same inode, stat-identical" \
    [ "$(stat_of "$W/conf/sites-available/default")" = "$before_default" ]
check "hard link: original bytes" no_change
check "xattr: the main file keeps its inode and its attribute" \
    [ "$(stat_of "$CONF")" = "$before_conf" -a "$(xattr_of "$CONF")" = label ]
prepare nginx-org xattr
set_xattr "$CONF"
before_conf=$(stat_of "$CONF")
install --ase-server http://127.0.0.1:9999 --enable-location /
check "xattr: a changed file keeps its attribute" [ "$rc" -eq 0 -a "$(xattr_of "$CONF")" = label ]
install --uninstall
check "xattr: uninstall gives back the bytes, inode and attribute" \
    [ "$(stat_of "$CONF")" = "$before_conf" -a "$(xattr_of "$CONF")" = label ]
check "xattr: original restored" no_change

say "a directory the install created"
prepare nginx-org newdir
install --ase-server http://127.0.0.1:9999 --modules-dir "$W/newdir/modules"
check "created modules directory: install" [ -d "$W/newdir/modules" ]
install --uninstall
check "created modules directory: removed by the uninstall" [ ! -e "$W/newdir" ]
install --ase-server ftp://bad.example --modules-dir "$W/newdir/modules"
check "created modules directory: removed by a rollback" [ "$rc" -ne 0 -a ! -e "$W/newdir" ]

say "a [ in the configuration directory's path"
prepare nginx-org 'br[ack]et'
install --ase-server http://127.0.0.1:9999 --enable-all
check "[ in the path: install" [ "$rc" -eq 0 ]
check "[ in the path: nginx reads ase.conf (ase_request on in nginx -T)" \
    [ "$(nginx_dump | grep -c 'ase_request on;')" -eq 1 ]
install --ase-server http://127.0.0.1:9999 --enable-all
check "[ in the path: second install changes nothing" has "nothing changed"
install --uninstall
check "[ in the path: uninstall gives back the original" no_change

say "messages"
prepare nginx-org msg
if chattr +i "$CONF" 2>/dev/null; then
    install --ase-server http://127.0.0.1:9999 --enable-location /
    chattr -i "$CONF"
    check "immutable file: refused with one clear line" refused "cannot write $CONF: Operation not permitted"
    check "immutable file: no 'could not restore' for a file never changed" [ -z "$(grep -i 'could not restore' <<<"$out")" ]
    check "immutable file: nothing changed" no_change
else
    printf 'skip  immutable file: chattr +i is not supported under %s\n' "$TMP"
fi
printf 'x\n' >"$W/not-a-dir"
out=$("$INSTALL" --conf "$CONF" --modules-dir "$W/mods" --prefix "$W/prefix" --backup-dir "$W/not-a-dir/b" \
    --ase-server http://127.0.0.1:9999 2>&1) && rc=0 || rc=$?
check "unwritable backup directory: refused with one clear line" refused "cannot write the backups to $W/not-a-dir/b"
check "unwritable backup directory: no traceback" [ -z "$(grep -i traceback <<<"$out")" ]
check "unwritable backup directory: nothing changed" no_change
for f in "$CONF" "$W/orig/nginx.conf"; do sed -i 's|^    sendfile        on;|&\n    map $uri $ase_verdict { default x; }|' "$f"; done
want=$(grep -n 'ase_verdict' "$CONF" | cut -d: -f1)
install --ase-server http://127.0.0.1:9999 --enable-location /
check "nginx -t failing after the patch: refused, nothing changed" [ "$rc" -ne 0 ] && check "nginx -t failing: nothing changed" no_change
check "nginx -t failing: the line quoted is the operator's line $want" has "ase_verdict.* in $CONF:$want\$"

say "--help documents every flag"
help=$("$INSTALL" --help)
undocumented=""
flags=$(cd "$ROOT/scripts/install" && python3 -B -c 'import cli; print(" ".join(o for a in cli.parser()._actions for o in a.option_strings))')
check "--help: the parser has its flags (at least 20)" [ "$(wc -w <<<"$flags")" -ge 20 ]
for f in $flags; do
    grep -q -- "$f" <<<"$help" || undocumented+=" $f"
done
out="not in --help:$undocumented"
check "--help documents every flag" [ -z "$undocumented" ]

trap - ERR
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
