#!/usr/bin/env bash
# Benchmarks the ngx-ase modules on loopback and writes the results (BENCHMARKS.md).
#
#   scripts/bench.sh              the default run (10 alternating rounds of 5 s per
#                                 configuration and phase, a million requests for the RSS
#                                 figure, a profile; about 16 minutes on 2 cores once built);
#                                 rewrites its generated section of BENCHMARKS.md
#   scripts/bench.sh --quick      a smoke run (3 rounds of 3 s, 100,000 requests for RSS,
#                                 no profile; about 5 minutes); writes only
#                                 build/bench/latest/report.md
#   --nginx release | system      release (default): NGINX 1.28 built by scripts/build.sh
#                                 --nginx release, results in BENCHMARKS.md's first section;
#                                 system: Debian's nginx (/usr/sbin/nginx, nginx-dev) with the
#                                 modules as scripts/build.sh --nginx system builds them,
#                                 results in its own section ("On Debian's nginx"); neither
#                                 run overwrites the other's section. Any other NAME: the
#                                 nginx and modules already in build/NAME/{sbin,modules}, as
#                                 they are (not rebuilt, e.g. an nginx built with other
#                                 flags to find where a difference comes from); its report
#                                 stays in the run directory
#   --rounds N --duration S       rounds per configuration and seconds per round
#   --extra-rounds N              rounds of the four extra configurations (three-node cluster
#                                 and connection-per-call, each with its native equivalent):
#                                 the first N of the rounds (default 6, all with --quick)
#   --rate N                      the fixed rate of the latency phase (2000 requests/s)
#   --rss-requests N              requests of the long run for the RSS figure
#   --profile | --no-profile      perf counts (syscalls, mallocs per request) and a CPU
#                                 profile of the worker (default: on, off with --quick)
#   --write | --no-write          rewrite BENCHMARKS.md or not (default: on, off with --quick)
#   --port-base P                 loopback ports P..P+18 (default 18480)
#   --nice N                      run everything at this nice level (default -10 as root,
#                                 so that other work on a shared machine perturbs the
#                                 figures less; 0 to leave it)
#   --cache                       the verdict-cache scenario instead (issue #25: cache off and
#                                 on against an ASE stub 1 ms away, 1,000 clients), in its
#                                 own section of BENCHMARKS.md; options: --cache --help
#   --report-from DIR             only rewrite the report from an earlier run's figures
#                                 (DIR = build/bench/run-*), e.g. after editing
#                                 bench/report.py (the report) or bench/stats.py (medians,
#                                 same-round ratios; python3 -m unittest discover -s bench)
#
# Every figure is a ratio against (or a difference from) a baseline measured in the same
# run: the same gateway configuration with ase_request/ase_response off. A fifth
# configuration, the native floor, is that baseline plus auth_request + mirror to the same
# fast ASE stub (nginx's own C machinery doing the same two extra exchanges per request,
# without the JSON body; bench/gateway.conf.in); ngx-ase (stub) is also reported against it.
# Each configuration is measured in alternating rounds (base, stub, native, refused,
# black-holed, then the extra ones, base, ...) after one warm-up each, and medians are
# reported. The extra configurations, each beside its nginx-native equivalent: a three-node
# cluster (three ase_server primaries, round robin, to three stub nodes; native: an upstream
# of the same three servers, keep-alive) and connection-per-call (the stub closes every
# connection, as an ASE without enable_sideband_keepalive; native: no upstream keep-alive).
# The gateway under test runs one worker; the backend and the ASE stub run in a second
# nginx (one worker) so that the gateway worker's CPU time (/proc/PID/stat) is its own.
# See BENCHMARKS.md.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
for a in "$@"; do
    [ "$a" = --cache ] && exec "$ROOT/bench/cache.sh" "$@"
done

quick=0 rounds= extra_rounds= nginx_choice=release duration= rate=2000 rss_requests= profile= write_md= port_base=18480 report_from= nice_level=
args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1; shift ;;
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --rss-requests) rss_requests="$2"; shift 2 ;;
        --profile) profile=1; shift ;;
        --no-profile) profile=0; shift ;;
        --write) write_md=1; shift ;;
        --no-write) write_md=0; shift ;;
        --port-base) port_base="$2"; shift 2 ;;
        --report-from) report_from="$2"; shift 2 ;;
        --nice) nice_level="$2"; shift 2 ;;
        --nginx) nginx_choice="$2"; shift 2 ;;
        --extra-rounds) extra_rounds="$2"; shift 2 ;;
        -h|--help) sed -n '2,55p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
write_cli="$write_md"
if [ "$quick" = 1 ]; then
    : "${rounds:=3}" "${extra_rounds:=$rounds}" "${duration:=3}" "${rss_requests:=100000}" "${profile:=0}" "${write_md:=0}"
    warmup=2
else
    : "${rounds:=10}" "${extra_rounds:=6}" "${duration:=5}" "${rss_requests:=1000000}" "${profile:=1}" "${write_md:=1}"
    warmup=5
fi
for v in rounds extra_rounds duration rate rss_requests port_base; do
    [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "--${v//_/-} needs a positive integer"
done

[ "$extra_rounds" -le "$rounds" ] || die "--extra-rounds cannot exceed --rounds ($rounds)"
case "$nginx_choice" in
    release|system) ;;
    ''|*/*|.*) die "--nginx takes release, system or the NAME of a build/NAME, not '$nginx_choice'" ;;
    *) [ -z "$write_cli" ] || [ "$write_cli" = 0 ] || die "--write: only the release and system runs have a section"
       write_md=0 ;;
esac

started_at=$(date +%s)

# ---------------------------------------------------------------------------- set-up
if [ -z "$report_from" ]; then
    # nginx as users run it: 1.28 without --with-debug or test-only code, or Debian's own.
    case "$nginx_choice" in release|system) "$ROOT/scripts/build.sh" --nginx "$nginx_choice" ;; esac
    ensure_packages wrk
    if [ -z "$nice_level" ]; then
        nice_level=0
        [ "$(id -u)" = 0 ] && nice_level=-10
    fi
    [[ "$nice_level" =~ ^-?[0-9]+$ ]] || die "--nice needs an integer"
    # After the build; the measured processes (nginx, wrk, the load generator) inherit it.
    [ "$nice_level" != 0 ] && { renice -n "$nice_level" -p $$ >/dev/null || warn "renice $nice_level failed"; }
fi
# build/system/sbin/nginx is a link to Debian's /usr/sbin/nginx.
NGINX="$ROOT/build/$nginx_choice/sbin/nginx"
MODULES="$ROOT/build/$nginx_choice/modules"
[ -n "$report_from" ] || [ -x "$NGINX" ] || die "$NGINX not built"
# The native floor needs auth_request (mirror is always built in): scripts/build.sh adds it
# to the release build; Debian's nginx has it.
[ -n "$report_from" ] || "$NGINX" -V 2>&1 | grep -q -- '--with-http_auth_request_module' \
    || die "$NGINX lacks --with-http_auth_request_module (the native floor needs it): rebuild with scripts/build.sh"

# The fixed-rate load generator and the black hole: one small Rust program (bench/Cargo.toml,
# offline: httparse is the product's own dependency, already in cargo's cache).
LOADGEN="$ROOT/build/bench/loadgen"
mkdir -p "$ROOT/build/bench"
if [ ! -x "$LOADGEN" ] || [ "$ROOT/bench/loadgen.rs" -nt "$LOADGEN" ] || [ "$ROOT/bench/Cargo.toml" -nt "$LOADGEN" ]; then
    say "building build/bench/loadgen (bench/loadgen.rs)"
    cargo build -q --release --offline --locked --manifest-path "$ROOT/bench/Cargo.toml" --target-dir "$ROOT/build/bench/target" \
        || die "building bench/loadgen.rs failed"
    install -m 0755 "$ROOT/build/bench/target/release/loadgen" "$LOADGEN.new.$$" && mv -f "$LOADGEN.new.$$" "$LOADGEN"
fi

if [ -n "$report_from" ]; then
    RUN=$(cd "$report_from" && pwd) || die "no directory $report_from"
    # shellcheck disable=SC1091
    . "$RUN/params.sh" || die "$RUN/params.sh: not a complete run"
    NGINX="$ROOT/build/$nginx_choice/sbin/nginx"   # the run's (a run before --nginx: release)
    # BENCHMARKS.md only from a default run, unless asked.
    [ -n "$write_cli" ] || { write_md=1; [ "$quick" = 1 ] && write_md=0; }
else
    RUN="$ROOT/build/bench/run-$(date +%Y%m%d-%H%M%S)"
    [ "$nginx_choice" = system ] && RUN="$RUN-system"
    mkdir -p "$RUN"
    ln -sfn "$RUN" "$ROOT/build/bench/latest"
    : > "$RUN/results.tsv"
    : > "$RUN/commands.txt"
fi
RES="$RUN/results.tsv"
CMDS="$RUN/commands.txt"

# Each native equivalent right after its ngx-ase configuration: the two are compared round
# by round. The extra ones (EXTRA) run in the first $extra_rounds rounds only. Their labels in
# the report are bench/report.py's.
CONFIGS=(base stub native refused blackhole cluster native-cluster close native-close)
EXTRA=" cluster native-cluster close native-close "
is_extra() { [[ "$EXTRA" == *" $1 "* ]]; }
declare -A ASE_PORTS PORT
P_BACKEND=$((port_base + 1)) P_STUB=$((port_base + 2)) P_REFUSED=$((port_base + 3)) P_BLACKHOLE=$((port_base + 4))
# The cluster's other two stub nodes, and the stub that closes every connection.
P_STUB2=$((port_base + 5)) P_STUB3=$((port_base + 6)) P_CLOSE=$((port_base + 7))
ASE_PORTS=([base]=$P_STUB [stub]=$P_STUB [native]=$P_STUB [refused]=$P_REFUSED [blackhole]=$P_BLACKHOLE
           [cluster]="$P_STUB $P_STUB2 $P_STUB3" [native-cluster]="$P_STUB $P_STUB2 $P_STUB3"
           [close]=$P_CLOSE [native-close]=$P_CLOSE)
PORT=([base]=$((port_base + 10)) [stub]=$((port_base + 11)) [refused]=$((port_base + 12)) [blackhole]=$((port_base + 13))
      [native]=$((port_base + 14)) [cluster]=$((port_base + 15)) [native-cluster]=$((port_base + 16))
      [close]=$((port_base + 17)) [native-close]=$((port_base + 18)))
TOKEN=b3nchb3nchb3nchb3nchb3nchb3nch32

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
url() { echo "http://127.0.0.1:${PORT[$1]}$REQ_PATH"; }
HEADERS=(-H "User-Agent: ngx-ase-bench/1.0" -H "Accept: application/json"
         -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCIsImlhdCI6MTcwMDAwMDAwMH0.c2lnbmF0dXJlc2lnbmF0dXJl")
REQ_PATH="/api/items?id=7&sort=asc"
WRK_CONNS=32
LAT_CONNS=64

if [ -z "$report_from" ]; then
for p in $P_BACKEND $P_STUB $P_REFUSED $P_BLACKHOLE $P_STUB2 $P_STUB3 $P_CLOSE "${PORT[@]}"; do
    port_open "$p" && die "port $p is in use (choose others with --port-base)"
done

user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
# subst TEMPLATE "ASE_PORT..." ON|OFF PORT [native|native-nopool]: lines marked @NATIVE@ kept
# for the native equivalents only, those marked @NATIVE@@POOL@ (upstream keep-alive) only
# with a pool; @ASE_SERVERS@ and @NATIVE_SERVERS@ become one line per ASE port.
subst() {
    local native='/^@NATIVE@/d' pool='/^@NATIVE@@POOL@/d' p ase_servers="" native_servers=""
    case "${5:-}" in
        native) native='s|^@NATIVE@||' pool='s|^@NATIVE@@POOL@|@NATIVE@|' ;;
        native-nopool) native='s|^@NATIVE@||' ;;
    esac
    # One node: a down node stays down for the run (the refused and black-holed cases). A
    # cluster: nginx's upstream defaults, as the native equivalent's servers have them, so
    # a node that timed out once under load comes back as it would there.
    local health="max_fails=1 fail_timeout=60s"
    [ "$(wc -w <<<"$2")" -gt 1 ] && health="max_fails=1 fail_timeout=10s"
    for p in $2; do
        ase_servers+="${ase_servers:+\\n    }ase_server http://127.0.0.1:$p $health;"
        native_servers+="${native_servers:+\\n        }server 127.0.0.1:$p;"
    done
    sed -e "$pool" -e "$native" -e "s|@USER@|$user_line|" -e "s|@MODULES@|$MODULES|g" -e "s|@BACKEND_PORT@|$P_BACKEND|g" \
        -e "s|@STUB_PORT@|$P_STUB|g" -e "s|@STUB2_PORT@|$P_STUB2|g" -e "s|@STUB3_PORT@|$P_STUB3|g" \
        -e "s|@CLOSE_PORT@|$P_CLOSE|g" -e "s|@ASE_SERVERS@|$ase_servers|g" -e "s|@NATIVE_SERVERS@|$native_servers|g" \
        -e "s|@ASE@|$3|g" -e "s|@PORT@|$4|g" -e "s|@TOKEN@|$TOKEN|g" "$1"
}

MASTERS=()
BLACKHOLE_PID=
cleanup() {
    local m
    for m in "${MASTERS[@]}"; do
        kill -TERM "$m" 2>/dev/null || true
    done
    [ -n "$BLACKHOLE_PID" ] && kill -TERM "$BLACKHOLE_PID" 2>/dev/null || true
    [ "${PROBES_ADDED:-0}" = 1 ] && perf probe -q -d 'ngxasebench:*' 2>/dev/null || true
}
trap cleanup EXIT

# start_nginx NAME CONF_TEXT PORT: a prefix under the run directory, nginx started (daemon).
start_nginx() {
    local dir="$RUN/$1"
    mkdir -p "$dir/logs"
    printf '%s\n' "$2" > "$dir/nginx.conf"
    "$NGINX" -p "$dir" -c nginx.conf -t -q 2>"$dir/logs/t.log" || { cat "$dir/logs/t.log" >&2; die "nginx -t failed for $1"; }
    "$NGINX" -p "$dir" -c nginx.conf 2>>"$dir/logs/error.log" || die "nginx $1 did not start (see $dir/logs/error.log)"
    local i
    for i in $(seq 100); do
        [ -s "$dir/logs/nginx.pid" ] && port_open "$3" && break
        sleep 0.05
    done
    port_open "$3" || die "nginx $1 does not listen on $3"
    MASTERS+=("$(cat "$dir/logs/nginx.pid")")
}

# worker_pid NAME: the only worker of that nginx.
worker_pid() {
    local m w f
    m=$(cat "$RUN/$1/logs/nginx.pid")
    w=
    for _ in $(seq 100); do
        if [ -r "/proc/$m/task/$m/children" ]; then
            w=$(awk '{print $1}' "/proc/$m/task/$m/children")
        else
            for f in /proc/[0-9]*/stat; do
                [ "$(awk '{print $4}' "$f" 2>/dev/null)" = "$m" ] && { w=${f#/proc/}; w=${w%/stat}; break; }
            done
        fi
        [ -n "$w" ] && break
        sleep 0.05
    done
    [ -n "$w" ] || die "no worker for nginx $1"
    echo "$w"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)

rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RES"; }   # rec PHASE CFG ROUND KEY VALUE

say "starting the backend + ASE stub nginx, the black hole, and ${#CONFIGS[@]} gateways (run directory $RUN)"
start_nginx aux "$(subst "$ROOT/bench/aux.conf.in" 0 off 0)" "$P_STUB"
AUX_WORKER=$(worker_pid aux)
"$LOADGEN" blackhole "$P_BLACKHOLE" --max 1000 --lifetime 3600 &
BLACKHOLE_PID=$!
for i in $(seq 100); do port_open "$P_BLACKHOLE" && break; sleep 0.05; done
declare -A WORKER
for c in "${CONFIGS[@]}"; do
    onoff=on kind=
    case "$c" in
        base) onoff=off ;;
        native|native-cluster) onoff=off kind=native ;;
        native-close) onoff=off kind=native-nopool ;;
    esac
    start_nginx "gw-$c" "$(subst "$ROOT/bench/gateway.conf.in" "${ASE_PORTS[$c]}" "$onoff" "${PORT[$c]}" "$kind")" "${PORT[$c]}"
    WORKER[$c]=$(worker_pid "gw-$c")
    rec rss "$c" 0 cold_kib "$(rss_kib "${WORKER[$c]}")"
done
port_open "$P_REFUSED" && die "something listens on the 'refused' port $P_REFUSED"

# run_wrk CFG SECONDS: prints "requests rps non2xx socket_errors wrk_cpu_ticks".
run_wrk() {
    local out
    # wrk runs as the child of a shell that then reads its own cutime+cstime: wrk's CPU.
    out=$(bash -c 'wrk "$@" 2>&1; rc=$?; echo "wrk-cpu-ticks: $(awk "{print \$16 + \$17}" /proc/$$/stat)"; exit $rc' \
          wrk -t1 -c$WRK_CONNS -d"$2"s "${HEADERS[@]}" "$(url "$1")") || { echo "$out" >&2; die "wrk failed"; }
    echo "$out" >> "$RUN/wrk.log"
    awk '/requests in/ {n=$1} /Requests\/sec/ {r=$2} /Non-2xx/ {x=$NF}
         /Socket errors/ {gsub(",", ""); e=$4+$6+$8+$10} /^wrk-cpu-ticks:/ {w=$2}
         END {printf "%d %s %d %d %d\n", n, r, x, e, w}' <<<"$out"
}

# ---------------------------------------------------------------------------- warm-up
say "warm-up: ${warmup} s per configuration (opens the breaker for refused/black-holed)"
for c in "${CONFIGS[@]}"; do
    run_wrk "$c" "$warmup" > /dev/null
    rec rss "$c" 0 warm_kib "$(rss_kib "${WORKER[$c]}")"
done
echo "wrk -t1 -c$WRK_CONNS -d${warmup}s ${HEADERS[*]@Q} 'http://127.0.0.1:<gateway port>$REQ_PATH'   # warm-up, once per configuration" >> "$CMDS"

# ---------------------------------------------------------------------------- throughput
say "throughput: $rounds rounds x ${#CONFIGS[@]} configurations x ${duration} s, the last four in $extra_rounds rounds (wrk -t1 -c$WRK_CONNS)"
for r in $(seq "$rounds"); do
    for c in "${CONFIGS[@]}"; do
        is_extra "$c" && [ "$r" -gt "$extra_rounds" ] && continue
        t0=$(cpu_ticks "${WORKER[$c]}") a0=$(cpu_ticks "$AUX_WORKER")
        read -r n rps non2xx errs wrk_ticks < <(run_wrk "$c" "$duration")
        t1=$(cpu_ticks "${WORKER[$c]}") a1=$(cpu_ticks "$AUX_WORKER")
        rec tput "$c" "$r" requests "$n"
        rec tput "$c" "$r" rps "$rps"
        rec tput "$c" "$r" non2xx "$non2xx"
        rec tput "$c" "$r" errors "$errs"
        rec tput "$c" "$r" cpu_ticks $((t1 - t0))
        rec tput "$c" "$r" aux_cpu_ms_per_1k "$(awk -v t=$((a1 - a0)) -v n="$n" -v hz="$CLK_TCK" 'BEGIN {printf "%.4f", n ? t * 1000 / hz / n * 1000 : 0}')"
        rec tput "$c" "$r" wrk_cpu_ms_per_1k "$(awk -v t="$wrk_ticks" -v n="$n" -v hz="$CLK_TCK" 'BEGIN {printf "%.4f", n ? t * 1000 / hz / n * 1000 : 0}')"
        rec tput "$c" "$r" cpu_ms_per_1k "$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$CLK_TCK" 'BEGIN {printf "%.4f", n ? t * 1000 / hz / n * 1000 : 0}')"
        printf '  round %d %-10s %9s req/s  (%d requests, %d non-2xx, %d socket errors)\n' "$r" "$c" "$rps" "$n" "$non2xx" "$errs" >&2
    done
done
echo "wrk -t1 -c$WRK_CONNS -d${duration}s ${HEADERS[*]@Q} 'http://127.0.0.1:<gateway port>$REQ_PATH'   # throughput, $rounds rounds per configuration ($extra_rounds for the extra ones), alternating" >> "$CMDS"

# ---------------------------------------------------------------------------- latency
say "latency at $rate requests/s: $rounds rounds x ${#CONFIGS[@]} configurations x ${duration} s, the last four in $extra_rounds rounds (loadgen, $LAT_CONNS connections)"
for r in $(seq "$rounds"); do
    for c in "${CONFIGS[@]}"; do
        is_extra "$c" && [ "$r" -gt "$extra_rounds" ] && continue
        t0=$(cpu_ticks "${WORKER[$c]}")
        line=$("$LOADGEN" rate "$(url "$c")" --rate "$rate" --duration "$duration" --conns "$LAT_CONNS" "${HEADERS[@]}")
        t1=$(cpu_ticks "${WORKER[$c]}")
        echo "$c round $r: $line" >> "$RUN/loadgen.log"
        for kv in $line; do
            rec lat "$c" "$r" "${kv%%=*}" "${kv#*=}"
        done
        rec lat "$c" "$r" cpu_ticks $((t1 - t0))
        sent=$(sed -n 's/^sent=\([0-9]*\).*/\1/p' <<<"$line")
        rec lat "$c" "$r" cpu_ms_per_1k "$(awk -v t=$((t1 - t0)) -v n="$sent" -v hz="$CLK_TCK" 'BEGIN {printf "%.4f", n ? t * 1000 / hz / n * 1000 : 0}')"
        printf '  round %d %-10s %s\n' "$r" "$c" "$(grep -o 'p50_us=[0-9]* p90_us=[0-9]* p99_us=[0-9]* p999_us=[0-9]*' <<<"$line") $(grep -o 'unsent=[0-9]*' <<<"$line")" >&2
    done
done
echo "build/bench/loadgen rate 'http://127.0.0.1:<gateway port>$REQ_PATH' --rate $rate --duration $duration --conns $LAT_CONNS ${HEADERS[*]@Q}   # latency, $rounds rounds per configuration ($extra_rounds for the extra ones), alternating" >> "$CMDS"

# ---------------------------------------------------------------------------- RSS
say "worker RSS: a long run of at least $rss_requests requests, modules on (stub), then the baseline"
for c in stub base; do
    before=$(rss_kib "${WORKER[$c]}")
    total=0
    while [ "$total" -lt "$rss_requests" ]; do
        # Chunks sized from the measured throughput (+10%), at most 60 s each.
        rps=$(awk -F'\t' -v c="$c" '$1=="tput" && $2==c && $4=="rps" {s+=$5; n++} END {print n ? s/n : 1000}' "$RES")
        secs=$(awk -v left=$((rss_requests - total)) -v r="$rps" 'BEGIN {s=int(left / r * 1.1) + 1; if (s > 60) s = 60; if (s < 2) s = 2; print s}')
        read -r n _ _ _ _ < <(run_wrk "$c" "$secs")
        total=$((total + n))
    done
    rec rss "$c" 0 before_kib "$before"
    rec rss "$c" 0 after_kib "$(rss_kib "${WORKER[$c]}")"
    rec rss "$c" 0 long_requests "$total"
    say "  $c: RSS $before KiB -> $(rss_kib "${WORKER[$c]}") KiB after $total requests"
done
for c in native refused blackhole cluster native-cluster close native-close; do
    rec rss "$c" 0 end_kib "$(rss_kib "${WORKER[$c]}")"
done
echo "wrk -t1 -c$WRK_CONNS -d<chunk>s ${HEADERS[*]@Q} 'http://127.0.0.1:<gateway port>$REQ_PATH'   # RSS long run, chunks of <= 60 s until >= $rss_requests requests" >> "$CMDS"

# The gateways' own counters: did each configuration take the path it was meant to?
for c in stub refused blackhole cluster close; do
    "$LOADGEN" get "http://127.0.0.1:${PORT[$c]}/ase-status" > "$RUN/ase-status-$c.json" 2>/dev/null || true
done

# ---------------------------------------------------------------------------- profile
PROFILE_MD=""
if [ "$profile" = 1 ]; then
    ensure_packages linux-perf
    if ! perf stat -e task-clock true >/dev/null 2>&1; then
        PROFILE_MD="perf does not work on this machine (perf stat failed); no profile."
        warn "$PROFILE_MD"
    else
        say "profile: per-request counts at $rate requests/s (perf stat), CPU profile at saturation (perf record)"
        libc=$(ldd "$NGINX" | awk '/libc\.so/ {print $3}')
        PROBES_ADDED=0 have_probe=0
        if perf probe -l 2>/dev/null | grep -q 'ngxasebench:malloc'; then
            have_probe=1
        elif perf probe -q -x "$libc" -a 'ngxasebench:malloc=malloc' >/dev/null 2>&1; then
            PROBES_ADDED=1 have_probe=1
        fi
        events=task-clock,context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_connect
        [ "$have_probe" = 1 ] && events="$events,ngxasebench:malloc"
        window=4
        for c in base stub native refused close native-close; do
            "$LOADGEN" rate "$(url "$c")" --rate "$rate" --duration $((window + 2)) --conns "$LAT_CONNS" "${HEADERS[@]}" > /dev/null &
            lg=$!
            sleep 1
            perf stat -x, -e "$events" -p "${WORKER[$c]}" -o "$RUN/perf-stat-$c.csv" -- sleep "$window" >/dev/null 2>&1 || true
            wait "$lg" || true
            awk -F, -v c="$c" -v n=$((rate * window)) '$1 ~ /^[0-9.]+$/ {
                    name=$3; sub(/^syscalls:sys_enter_/, "", name); sub(/^raw_syscalls:sys_enter/, "syscalls", name);
                    sub(/^ngxasebench:/, "", name);
                    printf "prof\t%s\t0\t%s\t%.3f\n", c, name, (name == "task-clock" ? $1 * 1000 / n : $1 / n) }' \
                "$RUN/perf-stat-$c.csv" >> "$RES"
        done
        echo "perf stat -e $events -p <worker pid> -- sleep $window   # while build/bench/loadgen runs at $rate requests/s; counts divided by $((rate * window)) requests" >> "$CMDS"
        # Who calls malloc, per request (a uprobe with DWARF call chains: slow, so at 200/s).
        for c in stub refused; do
            "$LOADGEN" rate "$(url "$c")" --rate 200 --duration 4 --conns 4 "${HEADERS[@]}" > /dev/null &
            lg=$!
            sleep 1
            "$ROOT/bench/alloc-sites.sh" "${WORKER[$c]}" 1.5 300 20 > "$RUN/alloc-sites-$c.txt" 2>&1 || true
            wait "$lg" || true
        done
        echo "bench/alloc-sites.sh <worker pid> 1.5 300 20   # while build/bench/loadgen runs at 200 requests/s (stub, then refused)" >> "$CMDS"
        # Where the worker's time goes at saturation, modules on.
        run_wrk stub 8 > /dev/null &
        wk=$!
        sleep 1
        perf record -q -F 999 -g -p "${WORKER[stub]}" -o "$RUN/perf-stub.data" -- sleep 5 >/dev/null 2>&1 || true
        wait "$wk" || true
        echo "perf record -F 999 -g -p <stub gateway worker pid> -- sleep 5   # while wrk -t1 -c$WRK_CONNS runs against it" >> "$CMDS"
        if [ -s "$RUN/perf-stub.data" ]; then
            perf report -i "$RUN/perf-stub.data" --no-children -g none --sort dso --stdio 2>/dev/null \
                | grep -v '^#' | grep -v '^$' > "$RUN/perf-stub-dso.txt" || true
            perf report -i "$RUN/perf-stub.data" --no-children -g none --sort dso,sym --stdio 2>/dev/null \
                | grep -v '^#' | grep -v '^$' > "$RUN/perf-stub-sym.txt" || true
            perf report -i "$RUN/perf-stub.data" --children -g none --sort sym --stdio 2>/dev/null \
                | grep -v '^#' | grep -v '^$' > "$RUN/perf-stub-children.txt" || true
        fi
    fi
fi

finished_at=$(date +%s)
end_loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=""
git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || dirty=" (with uncommitted changes in the work tree)"
declare -p nginx_choice quick rounds extra_rounds duration rate rss_requests profile warmup port_base nice_level started_at finished_at end_loadavg commit dirty args PROFILE_MD \
    | sed 's/^declare -[a-zA-Z-]* //' > "$RUN/params.sh"
fi   # measurement

# ---------------------------------------------------------------------------- report
# The statistics and the report are bench/report.py's (bench/stats.py); this passes it the
# run's parameters and the facts of the machine.
mode="default"
[ "$quick" = 1 ] && mode="--quick"
gateways=""
for c in "${CONFIGS[@]}"; do gateways+="${gateways:+ }$c=${PORT[$c]}"; done
python3 "$ROOT/bench/report.py" --run "$RUN" --configs "${CONFIGS[*]}" \
    --ports "backend=$P_BACKEND stub=$P_STUB refused=$P_REFUSED blackhole=$P_BLACKHOLE stub2=$P_STUB2 stub3=$P_STUB3 close=$P_CLOSE" \
    --gateways "$gateways" --nginx-build="$nginx_choice" \
    --mode="$mode" --rounds "$rounds" --extra-rounds "$extra_rounds" --duration "$duration" --warmup "$warmup" --rate "$rate" \
    --wrk-conns "$WRK_CONNS" --lat-conns "$LAT_CONNS" --profile "$profile" --profile-md="$PROFILE_MD" \
    --started-at "$started_at" --finished-at "$finished_at" --end-loadavg="${end_loadavg:-}" \
    --nice="${nice_level:-0}" --commit="${commit:-unknown}" --dirty="${dirty:-}" --command="${args[*]}" \
    --machine="$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), Linux $(uname -r)" \
    --nginx-version="$("$NGINX" -v 2>&1 | sed 's|.*nginx/||')" \
    --nginx-flags="$("$NGINX" -V 2>&1 | grep -oE -- '--with-debug|--with-http_auth_request_module' | tr '\n' ' ' | sed 's/ $//')" \
    --nginx-cc-opt="$("$NGINX" -V 2>&1 | sed -n "s/.*--with-cc-opt='\([^']*\)'.*/\1/p")" \
    --wrk-version="$( (wrk -v 2>&1 || true) | awk 'NR==1 {print $2}')" \
    --rustc="$(rustc --version | cut -d' ' -f1-2)" \
    > "$RUN/report.md" || die "bench/report.py failed"
wall=$((finished_at - started_at))

cat "$RUN/report.md" | sed -n '/^### Throughput/,/^### Commands/p' | grep -v '^### Commands' >&2
say "results: $RUN/report.md (raw figures: $RES), in $((wall / 60)) min $((wall % 60)) s"

# Each nginx has its own generated section (bench/report.py's markers): a run replaces only
# its own, and appends it when missing.
if [ "$write_md" = 1 ]; then
    md="$ROOT/BENCHMARKS.md"
    marker="scripts/bench.sh output"
    [ "$nginx_choice" = system ] && marker="scripts/bench.sh --nginx system output"
    "$ROOT/bench/write-section.sh" "$md" "$RUN/report.md" "$marker"
    say "BENCHMARKS.md updated ($marker)"
fi
