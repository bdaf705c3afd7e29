#!/usr/bin/env bash
# Runs the core cases through nginx under valgrind memcheck, with the three modules, two
# ASE doubles (a plain primary and a TLS backup) and a backend (a second server in the
# same nginx), then stops nginx with SIGQUIT (what `nginx -s quit` sends) so valgrind
# writes its summary, and checks it: no invalid read, write or free (nor a syscall reading
# unaddressable memory) anywhere, and no use of an uninitialised value nor a definite leak
# through our modules. Two passes:
#   single  `master_process off`: one process does everything;
#   worker  a master and one worker (valgrind follows the fork), with a reload (a new
#           worker; the old one closes its sideband connections and exits).
#
#   scripts/valgrind.sh [--no-build] [--no-ca-file] [single|worker|both]   (default: both)
#   --no-build    use build/vendored and target/double as they are
#   --no-ca-file  `ase_ssl_verify off` instead of `ase_ssl_trusted_certificate` (leaves
#                 out the CA file's loading, e.g. to look past a finding there)
#
# Cases: allowed; blocked (deny list); a user header; a POST with a body; the status page
# (JSON, Prometheus); ASE answers 500, garbage, reset, a body cut short; a slow ASE (the
# timeout fires, fail open and fail closed); clients that leave mid-check; (worker pass) a
# reload; the primary dies (failover to the TLS backup, verified against its
# certificate); every node down (fail open, the breaker); the primary comes back.
# Logs stay in target/valgrind/PASS/ (memcheck.PID.log, nginx's logs). Exit 0 = clean.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

build=1
passes=(single worker)
ca_file=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --no-ca-file) ca_file=0 ;;
        single|worker) passes=("$1") ;;
        both) passes=(single worker) ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

ensure_rust
ensure_packages valgrind curl openssl python3
if [ $build -eq 1 ]; then
    "$ROOT/scripts/build.sh" --nginx vendored
    say "building the ASE test double"
    (cd "$ROOT" && cargo build --release -p ase-double --target-dir "$ROOT/target/double")
fi
NGINX="$ROOT/build/vendored/sbin/nginx"
MODULES="$ROOT/build/vendored/modules"
DOUBLE="${ASE_DOUBLE_BIN:-$ROOT/target/double/release/ase-double}"
[ -x "$NGINX" ] || die "$NGINX not found: run scripts/build.sh"
[ -x "$DOUBLE" ] || die "$DOUBLE not found: cargo build --release -p ase-double --target-dir target/double"

TOP="$ROOT/target/valgrind"
rm -rf "$TOP"
mkdir -p "$TOP"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# start_double DIR [FLAGS...]: starts an ASE double (data port $LISTEN, else any), waits
# for its ready file.
start_double() {
    local dir="$1"; shift
    mkdir -p "$dir"
    rm -f "$dir/ready.json"
    "$DOUBLE" --listen "${LISTEN:-127.0.0.1:0}" --admin 127.0.0.1:0 --ready-file "$dir/ready.json" \
        --log "$dir/calls.log" "$@" >/dev/null 2>"$dir/stderr.log" &
    echo $! >"$dir/pid"
    pids+=("$!")
    for _ in $(seq 100); do [ -s "$dir/ready.json" ] && break; sleep 0.1; done
    [ -s "$dir/ready.json" ] || die "the ASE double did not start: $(cat "$dir/stderr.log")"
}
stop_double() { kill "$(cat "$1/pid")" 2>/dev/null || true; wait "$(cat "$1/pid")" 2>/dev/null || true; }
admin() { # admin DIR METHOD PATH [JSON]
    local a; a="$(json_field "$1/ready.json" admin)"
    curl -sS -o /dev/null -X "$2" ${4:+-H 'Content-Type: application/json' --data "$4"} "http://$a$3"
}

say "a certificate for the TLS backup"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$TOP/ase.key" -out "$TOP/ase.crt" >/dev/null 2>&1 || die "openssl req failed"
TOKEN=vg0t0k3nvg0t0k3nvg0t0k3nvg0t0k3n

# nginx's own known definite leak (the environment array a worker builds once; the check
# below only counts stacks through our modules anyway, this keeps the summaries quiet).
cat >"$TOP/nginx.supp" <<'EOF'
{
   nginx-worker-environment
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   fun:ngx_set_environment
}
EOF

failures=0
# expect NAME STATUS CURL_ARGS...: one request, its status checked.
expect() {
    local name="$1" want="$2"; shift 2
    local got
    got="$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$@" || true)"
    if [ "$got" = "$want" ]; then
        echo "  ok   $name ($got)"
    else
        echo "  FAIL $name: got $got, want $want"
        failures=$((failures + 1))
    fi
}

# run_pass single|worker: one nginx under valgrind through every case; leaves the logs in
# $TOP/PASS/.
run_pass() {
    local mode="$1"
    local OUT="$TOP/$mode"
    mkdir -p "$OUT/prefix/logs" "$OUT/prefix/conf"
    printf '%s\n' "$TOKEN" >"$OUT/prefix/conf/ase.token"
    chmod 600 "$OUT/prefix/conf/ase.token"
    LISTEN= start_double "$OUT/double1" --token "$TOKEN" --keepalive
    LISTEN= start_double "$OUT/double2" --token "$TOKEN" --keepalive --tls-cert "$TOP/ase.crt" --tls-key "$TOP/ase.key"
    local data1 data2_port port backend_port process_lines
    data1="$(json_field "$OUT/double1/ready.json" data)"
    data2_port="$(json_field "$OUT/double2/ready.json" data | sed 's/.*://')"
    port="$(free_port)"
    backend_port="$(free_port)"
    local tls_line="ase_ssl_trusted_certificate $TOP/ase.crt;"
    [ $ca_file -eq 1 ] || tls_line="ase_ssl_verify off;"
    if [ "$mode" = single ]; then
        process_lines="master_process off;"
    else
        # the worker keeps root's rights only so that valgrind can write its log as it exits
        process_lines="master_process on; worker_processes 1;"
        [ "$(id -u)" -eq 0 ] && process_lines="$process_lines user root;"
    fi
    cat >"$OUT/prefix/conf/nginx.conf" <<EOF
load_module $MODULES/ngx_ase_common_module.so;
load_module $MODULES/ngx_http_ase_request_module.so;
load_module $MODULES/ngx_http_ase_response_module.so;
$process_lines
daemon off;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    log_format ase '\$request \$status \$ase_verdict \$ase_time';
    access_log logs/access.log ase;
    ase_server http://$data1 max_fails=1 fail_timeout=3s;
    ase_server https://localhost:$data2_port backup max_fails=1 fail_timeout=3s;
    ase_token_file $OUT/prefix/conf/ase.token;
    $tls_line
    # generous: everything is 20-50 times slower under valgrind
    ase_connect_timeout 2s;
    ase_timeout 4s;
    ase_zone ase 1m;
    ase_request on;
    ase_response on;
    ase_user_header X-User;
    server {
        listen 127.0.0.1:$port;
        location / { proxy_pass http://127.0.0.1:$backend_port; }
        location /closed/ { ase_fail_mode closed; proxy_pass http://127.0.0.1:$backend_port; }
        location = /status { ase_request off; ase_response off; ase_status; }
    }
    server {
        listen 127.0.0.1:$backend_port;
        ase_request off;
        ase_response off;
        location / { return 200 "backend ok\n"; }
    }
}
EOF
    say "$mode: nginx under valgrind (logs: $OUT/memcheck.*.log)"
    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,possible \
        --errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=40 \
        --suppressions="$TOP/nginx.supp" --log-file="$OUT/memcheck.%p.log" \
        "$NGINX" -p "$OUT/prefix" -c conf/nginx.conf >"$OUT/nginx.stdout" 2>&1 &
    local vg=$!
    pids+=("$vg")
    local U="http://127.0.0.1:$port"
    for _ in $(seq 600); do
        curl -s -o /dev/null --max-time 2 "$U/status" && break
        kill -0 "$vg" 2>/dev/null || { cat "$OUT/prefix/logs/error.log" >&2 || true; die "nginx exited at start"; }
        sleep 0.2
    done
    curl -s -o /dev/null --max-time 2 "$U/status" || die "nginx under valgrind did not start listening"

    expect "allowed" 200 "$U/api/allowed?x=1" -H 'Accept: application/json'
    expect "user header" 200 "$U/api/user" -H 'X-User: alice'
    expect "POST with a body" 200 -X POST --data '{"a":1}' -H 'Content-Type: application/json' "$U/api/post"
    admin "$OUT/double1" POST /deny '{"kind":"token","value":"evil-bearer"}'
    expect "blocked" 403 "$U/api/blocked" -H 'Authorization: Bearer evil-bearer'
    expect "status page" 200 "$U/status"
    expect "status page, Prometheus" 200 "$U/status?format=prometheus"

    local fault
    for fault in '{"kind":"status","status":500}' '{"kind":"garbage"}' '{"kind":"reset"}' '{"kind":"close_mid_body"}'; do
        admin "$OUT/double1" PUT /fault "${fault%\}},\"calls\":\"request\",\"count\":1}"
        expect "ASE fault $fault: fail open" 200 "$U/api/fault"
        sleep 3.5 # fail_timeout: the primary comes back
    done
    admin "$OUT/double1" PUT /fault '{"kind":"delay","ms":8000,"calls":"request","count":1}'
    expect "slow ASE: timeout, fail open" 200 "$U/api/slow"
    sleep 3.5
    admin "$OUT/double1" PUT /fault '{"kind":"delay","ms":8000,"calls":"request","count":1}'
    expect "slow ASE: timeout, fail closed" 503 "$U/closed/slow"
    admin "$OUT/double1" DELETE /fault
    sleep 3.5

    admin "$OUT/double1" PUT /fault '{"kind":"delay","ms":3000,"calls":"request","count":5}'
    local i
    for i in 1 2 3 4 5; do
        curl -s -o /dev/null --max-time 0.5 "$U/api/leave$i" || true
    done
    sleep 5
    admin "$OUT/double1" DELETE /fault
    expect "clients that left mid-check, then one more" 200 "$U/api/after-leavers"

    if [ "$mode" = worker ]; then
        # signals, not `nginx -s`: that parses the configuration again, in a process
        # outside valgrind
        kill -HUP "$(cat "$OUT/prefix/logs/nginx.pid")"
        for _ in $(seq 150); do
            [ "$(ls "$OUT"/memcheck.*.log | wc -l)" -ge 3 ] && break; sleep 0.2
        done
        sleep 5
        expect "after a reload" 200 "$U/api/after-reload"
    fi

    stop_double "$OUT/double1"
    expect "primary down: the TLS backup answers" 200 "$U/api/failover"
    admin "$OUT/double2" POST /deny '{"kind":"token","value":"evil-bearer"}'
    expect "blocked through the TLS backup" 403 "$U/api/blocked-tls" -H 'Authorization: Bearer evil-bearer'
    stop_double "$OUT/double2"
    expect "every node down: fail open" 200 "$U/api/down1"
    expect "every node down: the breaker" 200 "$U/api/down2"
    expect "every node down: fail closed" 503 "$U/closed/down"
    sleep 3.5
    LISTEN="$data1" start_double "$OUT/double1" --token "$TOKEN" --keepalive
    sleep 0.5
    expect "the primary is back" 200 "$U/api/back"
    expect "status page at the end" 200 "$U/status"

    say "$mode: SIGQUIT, as nginx -s quit sends (valgrind writes its summary)"
    kill -QUIT "$(cat "$OUT/prefix/logs/nginx.pid")"
    for _ in $(seq 300); do kill -0 "$vg" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$vg" 2>/dev/null; then
        warn "nginx did not exit within 60 s of quit; terminating it"
        failures=$((failures + 1))
        kill -TERM "$vg" || true
    fi
    local rc=0
    wait "$vg" || rc=$?
    stop_double "$OUT/double1"
    echo "  valgrind exit status $rc"
    if grep -E '\[(alert|emerg)\]|panic' "$OUT/prefix/logs/error.log"; then
        echo "  FAIL nginx logged alerts or panics"
        failures=$((failures + 1))
    fi
}

for pass in "${passes[@]}"; do
    run_pass "$pass"
done

# Every error record of every log, by kind, and whether its stack goes through our code.
echo
verdict="$(python3 - "$TOP" <<'EOF'
import glob, re, sys
ours = re.compile(r'ngx_ase|ngx_http_ase|ngx-ase|ase_(common|request|response)')
kinds = [
    ('invalid access', re.compile(r'Invalid (read|write|free)|Mismatched free|Source and destination overlap|points to unaddressable')),
    ('uninitialised value', re.compile(r'uninitialised')),
    ('definite leak', re.compile(r'are definitely lost')),
]
bad = 0
for log in sorted(glob.glob(sys.argv[1] + '/*/memcheck.*.log')):
    text = open(log).read()
    command = re.search(r'Command: (.*)', text)
    if not command or 'nginx' not in command.group(1):
        continue
    counts = {k: [0, 0] for k, _ in kinds}  # [anywhere, through our code]
    details = []
    for record in re.split(r'\n==\d+== \n', text):
        for kind, pat in kinds:
            if pat.search(record):
                mine = bool(ours.search(record))
                counts[kind][0] += 1
                counts[kind][1] += mine
                if kind == 'invalid access' or mine:
                    details.append(record.strip())
                break
    summary = [re.sub(r'^==\d+== +', '', l) for l in text.splitlines()
               if re.search(r'ERROR SUMMARY|definitely lost:|indirectly lost:|possibly lost:|still reachable:', l)]
    print(f"{log}:", file=sys.stderr)
    for l in summary:
        print(f"    {l}", file=sys.stderr)
    for kind, (anywhere, mine) in counts.items():
        print(f"    {kind}: {anywhere} record(s), {mine} through our modules", file=sys.stderr)
    for d in details[:5]:
        print('\n'.join('      ' + re.sub(r'^==\d+== ', '', l) for l in d.splitlines()
                        if 'UnknownInlinedFun' not in l), file=sys.stderr)
    bad += counts['invalid access'][0] + counts['uninitialised value'][1] + counts['definite leak'][1]
print('clean' if bad == 0 else 'dirty')
EOF
)"
echo "requests answered unexpectedly, alerts, hangs: $failures"
# Fails on: an invalid access anywhere; an uninitialised value or a definite leak whose
# stack goes through our modules; a request answered unexpectedly; an alert.
if [ "$verdict" = clean ] && [ "$failures" -eq 0 ]; then
    echo "valgrind: clean"
else
    echo "valgrind: FAILED"
    exit 1
fi
