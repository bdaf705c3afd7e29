#!/usr/bin/env bash
# The long reliability run (issue 10), not part of scripts/test.sh or CI: the fuzz targets
# for minutes each, then nginx with the modules under steady load on loopback while the
# ASE misbehaves and nginx is operated: reloads, ASE faults (slow, reset, garbage, 5xx),
# the primary ASE killed and restarted (failover to the backup and back), deny-list and
# keep-alive changes. After every round: nginx answered every request (fail open), no
# worker crashed, nothing was logged at alert level, the status page reads; at the end the
# workers' memory and file descriptors did not keep growing.
#
#   scripts/soak.sh                       fuzz 300 s per target, then 10 minutes of load
#   --fuzz-seconds S | --no-fuzz          seconds per fuzz target (default 300)
#   --minutes M | --no-load               minutes of load and operations (default 10)
#   --no-build                            use build/vendored and target/double as they are
#
# Everything stays on loopback; logs in target/soak/. Ends with "N passed, M failed".
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

fuzz_seconds=300
minutes=10
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --fuzz-seconds) fuzz_seconds="$2"; shift 2 ;;
        --no-fuzz) fuzz_seconds=0; shift ;;
        --minutes) minutes="$2"; shift 2 ;;
        --no-load) minutes=0; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

passed=0
failed=0
check() { # check NAME CONDITION-STATUS
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "  ok   $1"; else failed=$((failed + 1)); echo "  FAIL $1"; fi
}

if [ "$fuzz_seconds" -gt 0 ]; then
    say "fuzzing: ${fuzz_seconds}s per target"
    rc=0
    "$ROOT/scripts/fuzz.sh" "$fuzz_seconds" || rc=$?
    check "fuzz targets, ${fuzz_seconds}s each (new inputs in fuzz/corpus-new/; scripts/fuzz.sh --minimize keeps them)" $rc
fi

if [ "$minutes" -gt 0 ]; then
    ensure_rust
    ensure_packages curl python3 wrk
    if [ $build -eq 1 ]; then
        "$ROOT/scripts/build.sh" --nginx vendored
        (cd "$ROOT" && cargo build --release -p ase-double --target-dir "$ROOT/target/double")
    fi
    NGINX="$ROOT/build/vendored/sbin/nginx"
    MODULES="$ROOT/build/vendored/modules"
    DOUBLE="${ASE_DOUBLE_BIN:-$ROOT/target/double/release/ase-double}"
    OUT="$ROOT/target/soak"
    rm -rf "$OUT"
    mkdir -p "$OUT/prefix/logs" "$OUT/prefix/conf"
    pids=()
    trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
    json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
    start_double() { # DIR [FLAGS]: on $LISTEN or any port
        local dir="$1"; shift
        mkdir -p "$dir"; rm -f "$dir/ready.json"
        "$DOUBLE" --listen "${LISTEN:-127.0.0.1:0}" --admin 127.0.0.1:0 --ready-file "$dir/ready.json" \
            --log /dev/null "$@" >/dev/null 2>>"$dir/stderr.log" &
        echo $! >"$dir/pid"; pids+=("$!")
        for _ in $(seq 100); do [ -s "$dir/ready.json" ] && return 0; sleep 0.1; done
        die "the ASE double did not start"
    }
    admin() { # DIR METHOD PATH [JSON]
        curl -sS -o /dev/null --max-time 5 -X "$2" ${4:+-H 'Content-Type: application/json' --data "$4"} \
            "http://$(json_field "$1/ready.json" admin)$3" || true
    }
    TOKEN=s0akt0k3ns0akt0k3ns0akt0k3ns0ak1
    printf '%s\n' "$TOKEN" >"$OUT/prefix/conf/ase.token"; chmod 600 "$OUT/prefix/conf/ase.token"
    start_double "$OUT/primary" --token "$TOKEN" --keepalive
    start_double "$OUT/backup" --token "$TOKEN" --keepalive
    PRIMARY="$(json_field "$OUT/primary/ready.json" data)"
    BACKUP="$(json_field "$OUT/backup/ready.json" data)"
    PORT="$(free_port)"; BACKEND="$(free_port)"
    user_line=""; [ "$(id -u)" -eq 0 ] && user_line="user root;"
    cat >"$OUT/prefix/conf/nginx.conf" <<EOF
load_module $MODULES/ngx_ase_common_module.so;
load_module $MODULES/ngx_http_ase_request_module.so;
load_module $MODULES/ngx_http_ase_response_module.so;
$user_line
worker_processes 2;
error_log logs/error.log notice;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    ase_server http://$PRIMARY max_fails=1 fail_timeout=2s;
    ase_server http://$BACKUP backup max_fails=1 fail_timeout=2s;
    ase_token_file $OUT/prefix/conf/ase.token;
    ase_timeout 300ms;
    ase_zone ase 1m;
    ase_request on;
    ase_response on;
    server {
        listen 127.0.0.1:$PORT;
        location / { proxy_pass http://127.0.0.1:$BACKEND; }
        location = /status { ase_request off; ase_response off; ase_status; }
    }
    server {
        listen 127.0.0.1:$BACKEND;
        ase_request off; ase_response off;
        location / { return 200 "ok\n"; }
    }
}
EOF
    "$NGINX" -p "$OUT/prefix" -c conf/nginx.conf -t 2>"$OUT/nginx-t.log" || die "nginx -t: $(cat "$OUT/nginx-t.log")"
    "$NGINX" -p "$OUT/prefix" -c conf/nginx.conf -g 'daemon off;' 2>"$OUT/prefix/logs/stderr.log" &
    pids+=("$!")
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/status" && break; sleep 0.1; done

    workers() { pgrep -P "$(cat "$OUT/prefix/logs/nginx.pid")" -f 'worker process' || true; }
    # sum of the workers' RSS (KiB) and open file descriptors
    footprint() {
        local rss=0 fds=0 w
        for w in $(workers); do
            rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$w/status" 2>/dev/null || echo 0)))
            fds=$((fds + $(ls "/proc/$w/fd" 2>/dev/null | wc -l)))
        done
        echo "$rss $fds"
    }
    ops=(reload delay reset garbage status500 kill_primary deny keepalive_off reload keepalive_on)
    deadline=$(( $(date +%s) + minutes * 60 ))
    round=0
    first_footprint=""
    say "load and operations for $minutes minutes (wrk, 2 threads, 32 connections, 20 s rounds)"
    while [ "$(date +%s)" -lt $deadline ]; do
        op="${ops[$((round % ${#ops[@]}))]}"
        case "$op" in
            reload) "$NGINX" -p "$OUT/prefix" -c conf/nginx.conf -s reload ;;
            delay) admin "$OUT/primary" PUT /fault '{"kind":"delay","ms":800,"calls":"request","count":200}' ;;
            reset) admin "$OUT/primary" PUT /fault '{"kind":"reset","count":200}' ;;
            garbage) admin "$OUT/primary" PUT /fault '{"kind":"garbage","count":200}' ;;
            status500) admin "$OUT/primary" PUT /fault '{"kind":"status","status":500,"count":200}' ;;
            kill_primary)
                kill "$(cat "$OUT/primary/pid")" 2>/dev/null || true
                ( sleep 8; LISTEN="$PRIMARY" start_double "$OUT/primary" --token "$TOKEN" --keepalive ) &
                ;;
            deny) admin "$OUT/primary" POST /deny '{"kind":"ip","value":"203.0.113.9"}'
                  admin "$OUT/primary" DELETE /deny '{"kind":"ip","value":"203.0.113.9"}' ;;
            keepalive_off) admin "$OUT/primary" PUT /keepalive '{"enabled":false}' ;;
            keepalive_on) admin "$OUT/primary" PUT /keepalive '{"enabled":true}' ;;
        esac
        wrk -t 2 -c 32 -d 20s --timeout 5s "http://127.0.0.1:$PORT/api/soak" >"$OUT/wrk.$round.log" 2>&1 || true
        admin "$OUT/primary" DELETE /fault
        # requests, non-2xx answers, socket errors (connect, read, write, timeout) of the round
        read -r reqs non2xx sockerr < <(python3 - "$OUT/wrk.$round.log" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
reqs = re.search(r'(\d+) requests in', t)
non = re.search(r'Non-2xx or 3xx responses: (\d+)', t)
sock = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', t)
print(reqs.group(1) if reqs else 0, non.group(1) if non else 0,
      sum(int(x) for x in sock.groups()) if sock else 0)
EOF
)
        status_ok=1
        if curl -s --max-time 5 "http://127.0.0.1:$PORT/status" | python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then
            status_ok=0
        fi
        crashes="$(cat "$OUT/prefix/logs/error.log" "$OUT/prefix/logs/stderr.log" 2>/dev/null \
            | grep -cE 'exited on signal|panic|\[alert\]|\[emerg\]' || true)"
        read -r rss fds < <(footprint)
        [ $round -eq 2 ] && first_footprint="$rss $fds"
        printf '  round %d (%s): %s requests, %s non-2xx, %s socket errors | workers RSS %s KiB, fds %s\n' \
            "$round" "$op" "$reqs" "$non2xx" "$sockerr" "$rss" "$fds"
        # A reload closes idle keep-alive connections: a request wrk sends on one just then
        # can meet the close (a read error). Nothing else may fail.
        allowed_sockerr=0
        [ "$op" = reload ] && allowed_sockerr=64
        ok=1
        if [ "$reqs" -gt 0 ] && [ "$non2xx" -eq 0 ] && [ "$sockerr" -le $allowed_sockerr ] \
            && [ "$status_ok" -eq 0 ] && [ "$crashes" -eq 0 ]; then
            ok=0
        fi
        check "round $round ($op): every request answered 2xx, status page, no crash or alert" $ok
        round=$((round + 1))
    done
    if [ -n "$first_footprint" ]; then
        read -r rss0 fds0 <<<"$first_footprint"
        read -r rss fds < <(footprint)
        echo "  workers: RSS ${rss0} -> ${rss} KiB, file descriptors ${fds0} -> ${fds}"
        # a reload replaces the workers, so compare loosely: no steady growth
        ok=1
        if [ "$rss" -le $((rss0 * 3 / 2 + 20480)) ] && [ "$fds" -le $((fds0 + 64)) ]; then ok=0; fi
        check "memory and file descriptors of the workers did not keep growing" $ok
    fi
    "$NGINX" -p "$OUT/prefix" -c conf/nginx.conf -s quit || true
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
