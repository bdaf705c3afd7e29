#!/usr/bin/env bash
# The demo: nginx with the three modules in front of a small sample API, and the ASE test
# double standing in for the ASE. Shows a call allowed, a bearer token put on the ASE's
# deny list, the same call blocked, and what the ASE saw; first, scripts/ase-check asks the
# ASE the questions the modules depend on.
#
#   scripts/demo.sh          run it and clean up
#   scripts/demo.sh --keep   leave everything running and print the URLs
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

keep=0
[ "${1:-}" = "--keep" ] && keep=1

"$ROOT/scripts/build.sh" >/dev/null
ensure_packages curl
say "building the ASE test double"
(cd "$ROOT" && cargo build -q --release -p ase-double --target-dir "$ROOT/target/double")

dir="$(mktemp -d /tmp/ngx-ase-demo.XXXXXX)"
pids=()
cleanup() {
    [ -f "$dir/logs/nginx.pid" ] && kill "$(cat "$dir/logs/nginx.pid")" 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
[ $keep -eq 1 ] || trap cleanup EXIT INT TERM
mkdir -p "$dir/logs" "$dir/conf"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NGINX_PORT=$(free_port)
API_PORT=$(free_port)

"$ROOT/target/double/release/ase-double" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
    --ready-file "$dir/ase.json" --log "$dir/logs/ase-calls.log" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/ase.json" ] && break; sleep 0.05; done
ASE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"])' "$dir/ase.json")
ADMIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$dir/ase.json")

M="$ROOT/build/vendored/modules"
sed -e "s|@MODULES@|$M|g" -e "s|@CONF@|$ROOT/nginx-conf|g" -e "s|@ASE@|$ASE|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@API_PORT@|$API_PORT|g" \
    "$ROOT/nginx-conf/demo.conf" > "$dir/conf/nginx.conf"
"$ROOT/build/vendored/sbin/nginx" -p "$dir" -c conf/nginx.conf
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/ase-status" && break; sleep 0.05; done

api="http://127.0.0.1:$NGINX_PORT"
show() { printf '\n\033[1m%s\033[0m\n$ %s\n' "$1" "$2"; eval "$2"; echo; }

show "0. Before turning the modules on, ask the ASE what they depend on (here the double: its one API covers every host and path, and it runs without token or keep-alive, so three lines say what a real ASE should change)." \
     "$ROOT/scripts/ase-check --conf $dir/conf/nginx.conf -n 50 || true"
# Its calls went to the double directly: clear them, so that step 4 shows only nginx's.
curl -s -o /dev/null -X DELETE "http://$ADMIN/records"
show "1. A call with a good token is allowed: nginx asked the ASE, which said 200." \
     "curl -s -i -H 'Authorization: Bearer alice-token' $api/api/orders | sed -n '1p;\$p'"
show "2. The ASE's AI engine flags bob's token: put it on the ASE's deny list (the double's admin API)." \
     "curl -s -X POST -d '{\"kind\":\"token\",\"value\":\"bob-token\"}' http://$ADMIN/deny"
show "3. Bob's call is now blocked with 403 before it reaches the API ..." \
     "curl -s -o /dev/null -w '%{http_code}\n' -H 'Authorization: Bearer bob-token' $api/api/orders"
show "   ... while alice still passes." \
     "curl -s -o /dev/null -w '%{http_code}\n' -H 'Authorization: Bearer alice-token' $api/api/orders"
show "4. What the ASE received (the double's records; request and response share a correlation ID):" \
     "curl -s http://$ADMIN/records | python3 -c 'import json,sys; [print(r[\"kind\"], r[\"status\"], r[\"correlation_id\"]) for r in json.load(sys.stdin)[\"records\"]]'"
show "5. The ASE goes away (the double is stopped): calls fail open, quickly, and are counted ..." \
     "kill ${pids[0]}; sleep 0.2; for i in 1 2 3; do curl -s -o /dev/null -w '%{http_code} in %{time_total}s\\n' -H 'Authorization: Bearer bob-token' $api/api/orders; done"
show "   ... and nginx logged the node going down once, not once per request:" \
     "grep -E 'node .* is down|every ASE node is down' $dir/logs/error.log | sed 's/^.*\\] //'"
show "6. nginx's access log with \$ase_verdict, \$ase_correlation_id and \$ase_time:" \
     "cat $dir/logs/access.log"
show "7. The status page (ase_status; counters of all workers through ase_zone):" \
     "curl -s $api/ase-status | python3 -m json.tool"

if [ $keep -eq 1 ]; then
    echo "Left running: API $api  ASE admin http://$ADMIN  prefix $dir"
    echo "Status page: open $api/ase-status in a browser (curl gets the JSON)"
    echo "Stop: kill \$(cat $dir/logs/nginx.pid) ${pids[*]}"
fi
