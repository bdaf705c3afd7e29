#!/usr/bin/env bash
# The verdict-cache benchmark (issue #25), run as `scripts/bench.sh --cache [options]`:
# added latency with the cache off and on against an ASE stub 1 ms away, 1,000 clients.
#
#   --rounds N --duration S     alternating rounds per configuration, seconds each
#                               (default 6 x 5 s; --quick: 3 x 3 s)
#   --rate N                    the fixed rate of the latency phase (default 2000 requests/s)
#   --identities N              distinct clients, Authorization: Bearer client-0..N-1 (1000)
#   --delay-us D                how long the stub takes to answer each call (default 1000)
#   --write | --no-write        rewrite BENCHMARKS.md's cache section (default on, off with --quick)
#   --port-base P               loopback ports P+1..P+12 (default 18580)
#   --nice N                    nice level of the measured processes (default -10 as root)
#   --report-from DIR           only rewrite the report from an earlier run (build/bench/cache-run-*)
#
# Three gateways (one worker each), measured in alternating rounds after a warm-up that
# shows every client once: the baseline (modules off), cache off (each check waits for the
# stub, ~1 ms) and cache on (every measured request a hit: verdicts stay valid for the run).
# The stub (build/bench/loadgen delay) counts the /ase/request calls it received: the share
# of requests whose metadata reached it, per configuration and round. The backend runs in
# nginx of its own (bench/aux.conf.in). Report: bench/cache_report.py.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib/common.sh"

quick=0 rounds= duration= rate=2000 identities=1000 delay_us=1000 write_md= port_base=18580 nice_level= report_from=
args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --cache) shift ;;
        --quick) quick=1; shift ;;
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --identities) identities="$2"; shift 2 ;;
        --delay-us) delay_us="$2"; shift 2 ;;
        --write) write_md=1; shift ;;
        --no-write) write_md=0; shift ;;
        --port-base) port_base="$2"; shift 2 ;;
        --nice) nice_level="$2"; shift 2 ;;
        --report-from) report_from="$2"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "--cache: unknown argument: $1 (see scripts/bench.sh --cache --help)" ;;
    esac
done
if [ "$quick" = 1 ]; then
    : "${rounds:=3}" "${duration:=3}" "${write_md:=0}"
else
    : "${rounds:=6}" "${duration:=5}" "${write_md:=1}"
fi
for v in rounds duration rate identities delay_us port_base; do
    [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "--${v//_/-} needs a positive integer"
done

CONFIGS=(base cache-off cache-on)
declare -A PORT=([base]=$((port_base + 10)) [cache-off]=$((port_base + 11)) [cache-on]=$((port_base + 12)))
P_BACKEND=$((port_base + 1)) P_STUB=$((port_base + 2))
LOADGEN="$ROOT/build/bench/loadgen"
NGINX="$ROOT/build/release/sbin/nginx"
MODULES="$ROOT/build/release/modules"
REQ_PATH="/api/items?id=7&sort=asc"   # fixed: the default cache key has the path
HEADERS=(-H "User-Agent: ngx-ase-bench/1.0" -H "Accept: application/json")
LAT_CONNS=64 WRK_CONNS=32
TOKEN=b3nchb3nchb3nchb3nchb3nchb3nch32

if [ -n "$report_from" ]; then
    RUN=$(cd "$report_from" && pwd) || die "no directory $report_from"
    # shellcheck disable=SC1091
    . "$RUN/params.sh" || die "$RUN/params.sh: not a complete run"
else
"$ROOT/scripts/build.sh" --nginx release
ensure_packages wrk
[ -x "$NGINX" ] || die "$NGINX not built"
if [ ! -x "$LOADGEN" ] || [ "$ROOT/bench/loadgen.rs" -nt "$LOADGEN" ]; then
    say "building build/bench/loadgen (bench/loadgen.rs)"
    mkdir -p "$ROOT/build/bench"
    cargo build -q --release --offline --locked --manifest-path "$ROOT/bench/Cargo.toml" --target-dir "$ROOT/build/bench/target" \
        || die "building bench/loadgen.rs failed"
    install -m 0755 "$ROOT/build/bench/target/release/loadgen" "$LOADGEN.new.$$" && mv -f "$LOADGEN.new.$$" "$LOADGEN"
fi
if [ -z "$nice_level" ]; then
    nice_level=0
    [ "$(id -u)" = 0 ] && nice_level=-10
fi
[[ "$nice_level" =~ ^-?[0-9]+$ ]] || die "--nice needs an integer"
[ "$nice_level" != 0 ] && { renice -n "$nice_level" -p $$ >/dev/null || warn "renice $nice_level failed"; }
started_at=$(date +%s)

RUN="$ROOT/build/bench/cache-run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN"
ln -sfn "$RUN" "$ROOT/build/bench/cache-latest"
RES="$RUN/results.tsv"
: > "$RES"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $P_BACKEND $P_STUB $((port_base + 3)) $((port_base + 4)) $((port_base + 5)) $((port_base + 6)) "${PORT[@]}"; do
    port_open "$p" && die "port $p is in use (choose others with --port-base)"
done
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
# subst TEMPLATE ASE CACHE PORT [STUB_PORT]: the gateways' stub is the delay stub; aux.conf.in's
# own fast stubs (unused here) get ports of their own, P+3..P+6.
subst() {
    sed -e "s|@USER@|$user_line|" -e "s|@MODULES@|$MODULES|g" -e "s|@BACKEND_PORT@|$P_BACKEND|g" \
        -e "s|@STUB_PORT@|${5:-$P_STUB}|g" -e "s|@STUB2_PORT@|$((port_base + 4))|g" -e "s|@STUB3_PORT@|$((port_base + 5))|g" \
        -e "s|@CLOSE_PORT@|$((port_base + 6))|g" -e "s|@ASE@|$2|g" -e "s|@CACHE@|$3|g" -e "s|@PORT@|$4|g" \
        -e "s|@TOKEN@|$TOKEN|g" "$1"
}

MASTERS=() STUB_PID=
cleanup() {
    local m
    for m in "${MASTERS[@]}"; do kill -TERM "$m" 2>/dev/null || true; done
    [ -n "$STUB_PID" ] && kill -TERM "$STUB_PID" 2>/dev/null || true
}
trap cleanup EXIT

# start_nginx NAME CONF_TEXT PORT
start_nginx() {
    local dir="$RUN/$1" i
    mkdir -p "$dir/logs"
    printf '%s\n' "$2" > "$dir/nginx.conf"
    "$NGINX" -p "$dir" -c nginx.conf -t -q 2>"$dir/logs/t.log" || { cat "$dir/logs/t.log" >&2; die "nginx -t failed for $1"; }
    "$NGINX" -p "$dir" -c nginx.conf 2>>"$dir/logs/error.log" || die "nginx $1 did not start (see $dir/logs/error.log)"
    for i in $(seq 200); do
        [ -s "$dir/logs/nginx.pid" ] && port_open "$3" && break
        sleep 0.05
    done
    port_open "$3" || die "nginx $1 does not listen on $3"
    MASTERS+=("$(cat "$dir/logs/nginx.pid")")
}
rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RES"; }   # rec PHASE CFG ROUND KEY VALUE
stub_calls() { "$LOADGEN" get "http://127.0.0.1:$P_STUB/stub-counts" | sed -n 's/.*"ase_request":\([0-9]*\).*/\1/p'; }
status_json() { "$LOADGEN" get "http://127.0.0.1:${PORT[$1]}/ase-status"; }
# The stub's count settles once the last detached sends of a round are in (bounded wait).
settled_stub_calls() {
    local a b i
    a=$(stub_calls)
    for i in $(seq 40); do
        sleep 0.05
        b=$(stub_calls)
        [ "$a" = "$b" ] && break
        a=$b
    done
    echo "$a"
}

say "the backend nginx, the ASE stub ${delay_us} µs away (loadgen delay) and ${#CONFIGS[@]} gateways (run directory $RUN)"
start_nginx aux "$(subst "$ROOT/bench/aux.conf.in" off off 0 $((port_base + 3)))" "$P_BACKEND"
"$LOADGEN" delay "$P_STUB" --delay-us "$delay_us" --lifetime 7200 &
STUB_PID=$!
for i in $(seq 100); do port_open "$P_STUB" && break; sleep 0.05; done
port_open "$P_STUB" || die "the delay stub does not listen on $P_STUB"
for c in "${CONFIGS[@]}"; do
    case "$c" in
        base) ase=off cache=off ;;
        cache-off) ase=on cache=off ;;
        cache-on) ase=on cache=verdicts ;;
    esac
    start_nginx "gw-$c" "$(subst "$ROOT/bench/cache-gateway.conf.in" "$ase" "$cache" "${PORT[$c]}")" "${PORT[$c]}"
done
url() { echo "http://127.0.0.1:${PORT[$1]}$REQ_PATH"; }
lat() { "$LOADGEN" rate "$(url "$1")" --rate "$rate" --duration "$2" --conns "$LAT_CONNS" --identities "$identities" "${HEADERS[@]}"; }

# Warm-up: every client seen at least once (the cache-on gateway learns all verdicts).
warmup=$(( (identities * 2 + rate - 1) / rate + 1 ))
say "warm-up: ${warmup} s per configuration at $rate requests/s"
for c in "${CONFIGS[@]}"; do lat "$c" "$warmup" > /dev/null; done

# ---------------------------------------------------------------------------- latency
say "latency at $rate requests/s, $identities clients: $rounds rounds x ${#CONFIGS[@]} configurations x ${duration} s"
for c in "${CONFIGS[@]}"; do status_json "$c" > "$RUN/ase-status-$c-before.json"; done
for r in $(seq "$rounds"); do
    for c in "${CONFIGS[@]}"; do
        s0=$(settled_stub_calls)
        line=$(lat "$c" "$duration")
        s1=$(settled_stub_calls)
        echo "$c round $r: $line" >> "$RUN/loadgen.log"
        for kv in $line; do rec lat "$c" "$r" "${kv%%=*}" "${kv#*=}"; done
        rec lat "$c" "$r" stub_calls $((s1 - s0))
        printf '  round %d %-9s %s stub_calls=%d\n' "$r" "$c" "$(grep -o '^sent=[0-9]* \|p50_us=[0-9]* \|p99_us=[0-9]* \|p999_us=[0-9]* ' <<<"$line" | tr -d '\n')" $((s1 - s0)) >&2
    done
done
for c in "${CONFIGS[@]}"; do status_json "$c" > "$RUN/ase-status-$c-after.json"; done

# ---------------------------------------------------------------------------- throughput
say "throughput at saturation: $rounds rounds x ${#CONFIGS[@]} configurations x ${duration} s (wrk -t1 -c$WRK_CONNS, bench/identities.lua)"
for r in $(seq "$rounds"); do
    for c in "${CONFIGS[@]}"; do
        s0=$(settled_stub_calls)
        out=$(wrk -t1 -c$WRK_CONNS -d"$duration"s -s "$ROOT/bench/identities.lua" "${HEADERS[@]}" "$(url "$c")" 2>&1) || { echo "$out" >&2; die "wrk failed"; }
        s1=$(settled_stub_calls)
        echo "$out" >> "$RUN/wrk.log"
        read -r n rps non2xx errs < <(awk '/requests in/ {n=$1} /Requests\/sec/ {r=$2} /Non-2xx/ {x=$NF}
            /Socket errors/ {gsub(",", ""); e=$4+$6+$8+$10} END {printf "%d %s %d %d\n", n, r, x, e}' <<<"$out")
        rec tput "$c" "$r" requests "$n"
        rec tput "$c" "$r" rps "$rps"
        rec tput "$c" "$r" non2xx "$non2xx"
        rec tput "$c" "$r" errors "$errs"
        rec tput "$c" "$r" stub_calls $((s1 - s0))
        printf '  round %d %-9s %9s req/s (%d requests, %d stub calls)\n' "$r" "$c" "$rps" "$n" $((s1 - s0)) >&2
    done
done
for c in "${CONFIGS[@]}"; do status_json "$c" > "$RUN/ase-status-$c-end.json"; done

finished_at=$(date +%s)
end_loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=""
git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || dirty=" (with uncommitted changes in the work tree)"
machine="$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), Linux $(uname -r)"
declare -p quick rounds duration rate identities delay_us nice_level started_at finished_at end_loadavg commit dirty machine args \
    | sed 's/^declare -[a-zA-Z-]* //' > "$RUN/params.sh"
fi   # measurement

python3 "$ROOT/bench/cache_report.py" --run "$RUN" --rounds "$rounds" --duration "$duration" --rate "$rate" \
    --identities "$identities" --delay-us "$delay_us" --lat-conns "$LAT_CONNS" --wrk-conns "$WRK_CONNS" \
    --commit="$commit" --dirty="$dirty" --machine="$machine" --nice="$nice_level" --end-loadavg="$end_loadavg" \
    --minutes=$(( (finished_at - started_at + 59) / 60 )) --command="scripts/bench.sh ${args[*]}" \
    > "$RUN/report.md" || die "bench/cache_report.py failed"
cat "$RUN/report.md" >&2
say "results: $RUN/report.md (raw figures: $RUN/results.tsv)"

if [ "$write_md" = 1 ]; then
    md="$ROOT/BENCHMARKS.md" marker="scripts/bench.sh --cache output"
    "$ROOT/bench/write-section.sh" "$md" "$RUN/report.md" "$marker"
    say "BENCHMARKS.md updated ($marker)"
fi
