#!/usr/bin/env bash
# Counts the instructions (user space, valgrind's callgrind) that the gateway worker and the
# stub-and-backend nginx spend per request, for configurations of a finished benchmark run:
# exact counts, the same on a quiet machine and a busy one, where CPU time and throughput are
# not. It tells where a difference between two nginx builds comes from (the nginx version,
# its compiler flags, --with-debug, our modules), and on which side of the loopback the
# stub's work lands. Kernel time (the system calls) is not counted: the profile of the run
# counts those (perf stat).
#
#   bench/instructions.sh RUN_DIR [CONFIG...]     default CONFIG: base stub native
#       RUN_DIR: build/bench/run-* of scripts/bench.sh (its generated configurations, with
#       their module paths and ports, are run again; nothing of that run may still listen)
#   --requests N    requests counted per configuration (default 1000, one connection, 100/s)
#   --port-shift N  add N to every port of the run's configurations (to count while another
#                   benchmark holds them)
#   --nginx NAME    run the configurations with build/NAME/{sbin/nginx,modules} instead of the
#                   run's own build (e.g. release, vendored, system, or bench/build-like-debian.sh's)
#
# Prints the build, then one line per configuration: gateway and stub+backend instructions per request, and
# the gateway's split between nginx and the three modules. Raw callgrind files stay in
# RUN_DIR/callgrind-NAME/.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib/common.sh"

requests=1000 build= shift_by=0
configs=()
run=""
while [ $# -gt 0 ]; do
    case "$1" in
        --requests) requests="$2"; shift 2 ;;
        --nginx) build="$2"; shift 2 ;;
        --port-shift) shift_by="$2"; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) if [ -z "$run" ]; then run="$1"; else configs+=("$1"); fi; shift ;;
    esac
done
[ -n "$run" ] && [ -f "$run/params.sh" ] || die "usage: bench/instructions.sh RUN_DIR [CONFIG...] (see --help)"
[ ${#configs[@]} -gt 0 ] || configs=(base stub native)
run=$(cd "$run" && pwd)
nginx_choice=release   # a run from before --nginx
# shellcheck disable=SC1091
. "$run/params.sh"
build=${build:-$nginx_choice}
NGINX="$ROOT/build/$build/sbin/nginx"
[ -x "$NGINX" ] || die "$NGINX: not built"
LOADGEN="$ROOT/build/bench/loadgen"
command -v valgrind >/dev/null || ensure_packages valgrind
out="$run/callgrind-$build"
mkdir -p "$out"

# shift_ports: the configuration on stdin with --port-shift added to every 127.0.0.1 port.
shift_ports() {
    awk -v d="$shift_by" '{while (match($0, /127\.0\.0\.1:[0-9]+/)) {p=substr($0, RSTART + 10, RLENGTH - 10)
        out=out substr($0, 1, RSTART - 1) "127.0.0.1#" (p + d); $0=substr($0, RSTART + RLENGTH)} print out $0; out=""}' | sed 's/127\.0\.0\.1#/127.0.0.1:/g'
}
port_of() { sed -n 's/^ *listen 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -n1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PIDS=()
# valgrind writes its last dump before it exits: wait, so that the ports are free again.
cleanup() { local p; for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start NAME: that nginx of the run, alone (no master), under callgrind with instrumentation
# off until asked; its pid in STARTED. ase_timeout is stretched: valgrind is ~50x slower and a
# timeout would take another path.
start() {
    local dir="$out/$1" port i
    rm -rf "$dir" && mkdir -p "$dir/logs"
    sed -e "s|$ROOT/build/$nginx_choice/modules/|$ROOT/build/$build/modules/|" -e 's/ase_timeout [0-9a-z]*;/ase_timeout 5s;/' -e 's/ase_connect_timeout [0-9a-z]*;/ase_connect_timeout 5s;/' \
        "$run/$1/nginx.conf" | shift_ports > "$dir/nginx.conf"
    port=$(port_of "$dir/nginx.conf")
    port_open "$port" && die "port $port is in use: stop whatever listens there"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/cg.out" \
        "$NGINX" -p "$dir" -c nginx.conf -g 'daemon off; master_process off;' >"$dir/valgrind.log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
    for i in $(seq 600); do port_open "$port" && break; sleep 0.1; done
    port_open "$port" || die "$1 did not listen on $port under valgrind (see $dir/valgrind.log)"
}
cg() { callgrind_control "$@" >/dev/null 2>&1 || die "callgrind_control $* failed"; }
# totals FILE...: the sum of the Ir totals of callgrind dumps.
totals() { awk '/^totals:/ {s += $2} END {printf "%d", s}' "$@"; }
# split FILE: "nginx modules" Ir of one dump, by the object the code is in (the dump's ob=
# lines; the cost line after a calls= line is the callee's, inclusive, and is skipped).
split() {
    awk '
        /^c?ob=/ {o=$0; sub(/^c?ob=/, "", o); if (match(o, /^\([0-9]+\) /)) {id=substr(o, 1, RLENGTH - 1); name[id]=substr(o, RLENGTH + 1); o=name[id]}
                  else if (o ~ /^\([0-9]+\)$/) o=name[o]; if ($0 ~ /^ob=/) ob=o; next}
        /^calls=/ {skip=1; next}
        /^[0-9+*-]/ {if (skip) {skip=0; next} if (ob ~ /sbin\/nginx$/) g += $2; else if (ob ~ /ngx_(http_)?ase_[a-z]*(_module)?\.so$/) m += $2; next}
        {skip=0}
        END {printf "%d %d\n", g, m}' "$1"
}

say "instructions per request, nginx of build/$build ($("$NGINX" -v 2>&1 | sed 's|.*nginx/||')), configurations of $run"
start aux
aux_pid=$STARTED
for c in "${configs[@]}"; do
    [ -d "$run/gw-$c" ] || die "no configuration $c in $run"
    start "gw-$c"
    gw_pid=$STARTED
    url="http://127.0.0.1:$(port_of "$out/gw-$c/nginx.conf")/api/items?id=7&sort=asc"
    hdr=(-H "User-Agent: ngx-ase-bench/1.0" -H "Accept: application/json"
         -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCIsImlhdCI6MTcwMDAwMDAwMH0.c2lnbmF0dXJlc2lnbmF0dXJl")
    # Warm: pools, connections and buffers made before counting.
    "$LOADGEN" rate "$url" --rate 100 --duration 3 --conns 1 "${hdr[@]}" > /dev/null
    rm -f "$out/gw-$c"/cg.out.* "$out/aux"/cg.out.*
    cg -z "$aux_pid"; cg -i on "$aux_pid"; cg -z "$gw_pid"; cg -i on "$gw_pid"
    line=$("$LOADGEN" rate "$url" --rate 100 --duration $((requests / 100)) --conns 1 "${hdr[@]}")
    cg -d "$gw_pid"; cg -i off "$gw_pid"; cg -d "$aux_pid"; cg -i off "$aux_pid"
    ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
    [ "${ok:-0}" -gt 0 ] || die "$c: no request answered 2xx ($line)"
    gw_files=("$out/gw-$c"/cg.out.*) aux_files=("$out/aux"/cg.out.*)
    read -r ngx mods < <(split "${gw_files[-1]}")
    awk -v c="$c" -v n="$ok" -v g="$(totals "${gw_files[@]}")" -v a="$(totals "${aux_files[@]}")" -v ng="$ngx" -v m="$mods" \
        'BEGIN {printf "%-16s requests=%d gateway_ir_per_req=%.0f (nginx %.0f, modules %.0f) stub_backend_ir_per_req=%.0f\n", c, n, g / n, ng / n, m / n, a / n}'
    kill -TERM "$gw_pid"; wait "$gw_pid" 2>/dev/null || true
done
