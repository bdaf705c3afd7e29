#!/usr/bin/env bash
# Installs the ngx-ase modules into an existing nginx and patches its configuration; see
# --help. The configuration is edited by scripts/install/main.py, which parses it with a
# tokenizer of nginx's own syntax (scripts/install/nginx_conf.py), never with line regexes.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() {
    cat <<'EOF'
Usage: scripts/install.sh [options] --ase-server URL [...]
       scripts/install.sh [options] --uninstall

Puts the three ngx-ase modules into an existing nginx and patches its configuration, safely
and idempotently. Run it again with other flags to change the settings; a second run with the
same flags changes nothing.

Which nginx:
  --nginx PATH          the nginx binary (default: nginx on PATH, else /usr/sbin/nginx). Its
                        version, configure arguments, --conf-path and --modules-path are read
                        from `nginx -V`.
  --conf PATH           the main configuration file to patch (default: nginx's --conf-path);
                        point it at a copy of a configuration to patch that copy instead.
  --modules-dir DIR     where the .so files go (default: nginx's --modules-path, else
                        <prefix>/modules). load_module lines always use absolute paths.
  --prefix DIR          the prefix for `nginx -t` (-p DIR); default: nginx's own.
  --modules-from DIR    the built modules to install (default: build/system/modules).
  --build               first build the modules for this nginx (scripts/build.sh --nginx
                        system, with the directory of --nginx first on PATH: the sources
                        from Debian's nginx-dev).
  --nginx-src DIR       with --build: build from this nginx source tree of the same version
                        instead (scripts/build.sh --nginx-src DIR --nginx BINARY), for an
                        nginx that is not Debian's (nginx.org's, one built by hand, Plus).

ASE settings, written to ase.conf at http level:
  --ase-server URL      an ASE node, http:// or https://host:port (repeatable; at least one
                        --ase-server or --ase-backup is needed to install)
  --ase-backup URL      an ASE node used when the others are down (ase_server URL backup;)
  --max-fails N         max_fails=N on every ase_server line
  --fail-timeout T      fail_timeout=T on every ase_server line
  --token-file PATH     ase_token_file PATH; the file must exist and not be world readable
  --fail-mode MODE      ase_fail_mode open|closed
  --connect-timeout T   ase_connect_timeout T (nginx time: 100ms, 1s)
  --timeout T           ase_timeout T
  --enable-all          ase_request on; ase_response on; at http level (in ase.conf)
  --enable-location P   ase_request on; ase_response on; inside every `location ... P {` block
                        whose last argument is P, in every server that has one (repeatable)

What it does:
  --dry-run             print the diff of every file it would change, change nothing
  --uninstall           take everything out again: the files it created and the modules it
                        installed are removed, its inserted lines are taken out, leaving each
                        configuration file byte-identical to before the install
  --backup-dir DIR      where the timestamped backups go (default: /var/backups/ngx-ase as
                        root, else ~/.local/state/ngx-ase/backups)
  -h, --help            this text

Where things go:
  - load_module lines for the three modules, in load order: a file
    modules-enabled/50-ngx-ase.conf when the main file includes modules-enabled/*.conf at
    its top level (Debian's layout), else lines in the main file at top level, after its own
    load_module lines or else before its first block or include (so before events/http).
  - ase.conf: conf.d/ase.conf when the http block already includes conf.d/*.conf (Debian,
    nginx.org packages), else ase.conf next to the main file (ase.NAME.conf for a main file
    NAME.conf other than nginx.conf) plus `include ase.conf;` at the start of the http block;
    when the directory's path has a glob character ("[", "*", "?"), the include names the file
    with that character bracketed ("[[]"), or nginx would read it as a pattern matching nothing.
    The flags' settings sit between managed markers in ase.conf; put your own http-level
    settings (ase_zone, ase_keepalive, ase_ssl_trusted_certificate, ...) below them: a
    re-install keeps them. If the managed lines themselves were edited, it refuses and shows
    the difference.
  - Inserted lines sit between `# ngx-ase: managed begin (... #N)` and `# ngx-ase: managed
    end (... #N)` comments, numbered within each file so that every block is found on its own
    even next to an identical one; created files start with a `# ngx-ase: managed file`
    comment; every other byte of every file stays as it was. The body of a `*_by_lua_block`
    is read as the Lua module reads it (Lua strings, long brackets, comments), never edited.
  - .ngx-ase-state.<main file name>.json next to the main file records what was created and
    what was inserted where (a dotfile: include globs never match it), one per main file:
    two main files in one directory (nginx.conf, nginx-canary.conf) are installed apart, and
    what they share (conf.d/ase.conf, the modules) stays until the last of them is
    uninstalled. Uninstall works from it alone, without parsing the configuration.

Safety:
  - Before anything changes: nginx must be built --with-compat, and the built modules must
    load into it. The check is nginx's own: `nginx -t` on a throwaway configuration that only
    loads them, which fails with "module ... version X instead of Y" when they were built for
    another nginx version, or "is not binary compatible" for another configure signature.
    Either way it stops with a clear message and changes nothing; rebuild with --build.
  - The configuration must pass `nginx -t` before the change too.
  - Every file it changes is first copied to <backup-dir>/<timestamp>-install/<its path>;
    then the state file records the change about to be made (a journal: each file's content
    hash before and after, where its backup is) before the first file changes.
  - Files are written in a crash-safe order: the modules, then the load_module lines, then
    ase.conf, then the lines that include or enable it (the main file is written once per
    step); an uninstall goes backwards, configuration first, modules last. The configuration
    passes `nginx -t` after each single write.
  - Killed at any point (SIGKILL, OOM, power cut after fsync): run the same command again; it
    first undoes the interrupted change from the journal and the backups (leftover
    *.ngx-ase-tmp files included), then does what it is asked. SIGINT, SIGTERM and SIGHUP
    stop it and put every file back.
  - Modules are written as a new file and renamed into place (a new inode), never copied over
    a file a running nginx has mapped. Configuration files with several hard links or with
    extended attributes (POSIX ACLs, SELinux labels) are rewritten in place instead, so the
    links and attributes survive; directories it had to create are removed by the uninstall.
  - `nginx -t` runs on the result; if it fails, every file is put back as it was (modules
    included) and nginx's message is printed with the line numbers of your files.
  - When it replaced modules a running nginx may have loaded, it says to restart nginx, not to
    reload it.
EOF
}

opt_nginx="" conf="" modules_dir="" prefix="" modules_from="" build=0 dry_run=0 uninstall=0 nginx_src=""
backup_dir="" token_file="" fail_mode="" connect_timeout="" timeout="" max_fails="" fail_timeout=""
enable_all=0
servers=() backups=() locations=()
flags_text="$*"

need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
    esac
    case "$1" in
        --nginx) need "$@"; opt_nginx="$2"; shift 2 ;;
        --conf) need "$@"; conf="$2"; shift 2 ;;
        --modules-dir) need "$@"; modules_dir="$2"; shift 2 ;;
        --prefix) need "$@"; prefix="$2"; shift 2 ;;
        --modules-from) need "$@"; modules_from="$2"; shift 2 ;;
        --build) build=1; shift ;;
        --nginx-src) need "$@"; nginx_src="$2"; shift 2 ;;
        --ase-server) need "$@"; servers+=("$2"); shift 2 ;;
        --ase-backup) need "$@"; backups+=("$2"); shift 2 ;;
        --max-fails) need "$@"; max_fails="$2"; shift 2 ;;
        --fail-timeout) need "$@"; fail_timeout="$2"; shift 2 ;;
        --token-file) need "$@"; token_file="$2"; shift 2 ;;
        --fail-mode) need "$@"; fail_mode="$2"; shift 2 ;;
        --connect-timeout) need "$@"; connect_timeout="$2"; shift 2 ;;
        --timeout) need "$@"; timeout="$2"; shift 2 ;;
        --enable-all) enable_all=1; shift ;;
        --enable-location) need "$@"; locations+=("$2"); shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        --backup-dir) need "$@"; backup_dir="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

command -v python3 >/dev/null || die "python3 is needed to edit the configuration (apt-get install python3)"

# --- the nginx ---------------------------------------------------------------------------------
nginx_bin="$opt_nginx"
if [ -z "$nginx_bin" ]; then
    nginx_bin=$(command -v nginx || true)
    [ -n "$nginx_bin" ] || { [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx; } || true
fi
[ -n "$nginx_bin" ] || die "no nginx found on PATH: give its binary with --nginx PATH"
case "$nginx_bin" in */*) ;; *) nginx_bin=$(command -v "$nginx_bin" || echo "$nginx_bin") ;; esac
[ -x "$nginx_bin" ] || die "$nginx_bin is not an executable nginx binary"
nginx_v=$("$nginx_bin" -V 2>&1) || die "$nginx_bin -V failed: $nginx_v"
version=$(sed -n 's|^nginx version: [^/]*/\([0-9][0-9.]*\).*|\1|p' <<<"$nginx_v" | head -n1)
[ -n "$version" ] || die "cannot read the version from $nginx_bin -V: $nginx_v"
configure_args=$(sed -n 's/^configure arguments: //p' <<<"$nginx_v")

# The value of --NAME=VALUE in the configure arguments (VALUE without quotes or spaces).
configure_arg() { grep -o -- " --$1=[^ ]*" <<<" $configure_args" | head -n1 | cut -d= -f2- | tr -d "'\"" || true; }
nginx_prefix=$(configure_arg prefix); nginx_prefix=${nginx_prefix:-/usr/local/nginx}
abs_in_prefix() { case "$1" in /*) echo "$1" ;; *) echo "${nginx_prefix%/}/$1" ;; esac; }
default_conf=$(configure_arg conf-path); default_conf=$(abs_in_prefix "${default_conf:-conf/nginx.conf}")
default_modules=$(configure_arg modules-path); default_modules=$(abs_in_prefix "${default_modules:-modules}")
conf=${conf:-$default_conf}
modules_dir=${modules_dir:-$default_modules}
[ -f "$conf" ] || die "$conf: no such configuration file (give one with --conf PATH)"
# nginx 1.19.5 added -e: `nginx -t` then reports to stderr instead of the compiled-in log file.
error_log_flag=()
if [ "$(printf '%s\n' 1.19.5 "$version" | sort -V | head -n1)" = 1.19.5 ]; then
    error_log_flag=(--error-log-flag)
fi

if [ -z "$backup_dir" ]; then
    if [ "$(id -u)" -eq 0 ]; then backup_dir=/var/backups/ngx-ase
    else backup_dir="${XDG_STATE_HOME:-$HOME/.local/state}/ngx-ase/backups"; fi
fi

nginx_version_text() { echo "$(( $1 / 1000000 )).$(( $1 / 1000 % 1000 )).$(( $1 % 1000 ))"; }

# Loads the built modules into this nginx with `nginx -t` on a throwaway configuration: nginx
# itself checks the version and the --with-compat signature the modules were built with.
check_modules() {
    local from="$1" tmp out m built want
    for m in "${MODULE_FILES[@]}"; do
        [ -f "$from/$m" ] || die "$from/$m not found: build the modules first (scripts/build.sh --nginx system), or add --build"
    done
    tmp=$(mktemp -d)
    {
        for m in "${MODULE_FILES[@]}"; do printf 'load_module "%s";\n' "$from/$m"; done
        printf 'pid "%s/nginx.pid";\nerror_log stderr;\nevents {}\n' "$tmp"
    } >"$tmp/nginx.conf"
    out=$("$nginx_bin" -t -c "$tmp/nginx.conf" -p "$tmp/" ${error_log_flag:+-e stderr} 2>&1) && { rm -rf "$tmp"; return 0; }
    rm -rf "$tmp"
    if [[ "$out" =~ version\ ([0-9]+)\ instead\ of\ ([0-9]+) ]]; then
        built=${BASH_REMATCH[1]} want=${BASH_REMATCH[2]}
        die "the modules in $from were built for nginx $(nginx_version_text "$built"), but $nginx_bin is nginx $(nginx_version_text "$want"): nothing was changed. Rebuild them for it (add --build, or scripts/build.sh --nginx system). nginx said: $out"
    fi
    if [[ "$out" == *"is not binary compatible"* ]]; then
        die "the modules in $from were built for an nginx with other configure options (a different module signature) than $nginx_bin: nothing was changed. Rebuild them for it (add --build). nginx said: $out"
    fi
    die "the modules in $from do not load into $nginx_bin: nothing was changed. nginx said: $out"
}

# Values go to main.py as --opt=VALUE, so that one starting with "-" is never taken for an option.
py_args=("--nginx=$nginx_bin" "--conf=$conf" "--modules-dir=$modules_dir" "--backup-dir=$backup_dir"
         "--flags-text=$flags_text" "${error_log_flag[@]}")
[ -n "$prefix" ] && py_args+=("--prefix=$prefix")
[ "$dry_run" -eq 1 ] && py_args+=(--dry-run)

if [ "$uninstall" -eq 1 ]; then
    say "uninstalling ngx-ase from $conf (nginx $version, $nginx_bin)"
    exec python3 -B "$ROOT/scripts/install/main.py" uninstall "${py_args[@]}" --modules-from=/nonexistent
fi

# --- install: checks that change nothing -------------------------------------------------------
[[ " $configure_args " == *" --with-compat "* ]] \
    || die "$nginx_bin (nginx $version) was not configured --with-compat, so no dynamic module built outside its own source tree can load into it: nothing was changed"
[ $(( ${#servers[@]} + ${#backups[@]} )) -gt 0 ] || die "give at least one --ase-server URL (see --help)"
case "$fail_mode" in ""|open|closed) ;; *) die "--fail-mode takes open or closed, not '$fail_mode'" ;; esac
[[ -z "$max_fails" || "$max_fails" =~ ^[0-9]+$ ]] || die "--max-fails takes a number, not '$max_fails'"
for t in "$fail_timeout" "$connect_timeout" "$timeout"; do
    [[ -z "$t" || "$t" =~ ^[0-9]+[0-9a-zA-Z]*$ ]] || die "'$t' is not an nginx time (like 100ms, 1s)"
done
if [ -n "$token_file" ]; then
    [ -e "$token_file" ] || die "--token-file $token_file: no such file"
    [ -f "$token_file" ] || die "--token-file $token_file is not a regular file"
    perm=$(stat -L -c %a "$token_file")
    (( (8#$perm & 4) == 0 )) || die "--token-file $token_file is world readable (mode $perm): chmod o-r it first, the token is a secret"
    case "$token_file" in /*) ;; *) token_file="$(cd "$(dirname "$token_file")" && pwd)/$(basename "$token_file")" ;; esac
fi

[ -z "$nginx_src" ] || [ "$build" -eq 1 ] || die "--nginx-src goes with --build"
if [ "$build" -eq 1 ]; then
    [ -z "$modules_from" ] || die "--build and --modules-from do not go together"
    if [ "$dry_run" -eq 1 ]; then
        warn "--dry-run: not building; checking the modules already in build/system/modules"
    else
        say "building the modules for $nginx_bin (nginx $version)"
        if [ -n "$nginx_src" ]; then
            "$ROOT/scripts/build.sh" --nginx-src "$nginx_src" --nginx "$nginx_bin" --name system
        else
            PATH="$(dirname "$nginx_bin"):$PATH" "$ROOT/scripts/build.sh" --nginx system
        fi
    fi
fi
modules_from=${modules_from:-$ROOT/build/system/modules}
modules_from=$(cd "$modules_from" 2>/dev/null && pwd) || die "$modules_from: no such directory (build the modules first, or add --build)"
check_modules "$modules_from"

py_args+=("--modules-from=$modules_from")
for s in "${servers[@]}"; do py_args+=("--ase-server=$s"); done
for s in "${backups[@]}"; do py_args+=("--ase-backup=$s"); done
for l in "${locations[@]}"; do py_args+=("--enable-location=$l"); done
[ -n "$max_fails" ] && py_args+=("--max-fails=$max_fails")
[ -n "$fail_timeout" ] && py_args+=("--fail-timeout=$fail_timeout")
[ -n "$token_file" ] && py_args+=("--token-file=$token_file")
[ -n "$fail_mode" ] && py_args+=("--fail-mode=$fail_mode")
[ -n "$connect_timeout" ] && py_args+=("--connect-timeout=$connect_timeout")
[ -n "$timeout" ] && py_args+=("--timeout=$timeout")
[ "$enable_all" -eq 1 ] && py_args+=(--enable-all)

say "installing ngx-ase into $conf (nginx $version, $nginx_bin; modules to $modules_dir)"
exec python3 -B "$ROOT/scripts/install/main.py" install "${py_args[@]}"
