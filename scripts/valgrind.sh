#!/usr/bin/env bash
# Runs integration test files (tests/*.rs) with every nginx they start under valgrind's
# memcheck: the harness (tests/harness/nginx.rs) runs nginx under NGX_ASE_WRAPPER, stops it
# with SIGQUIT (as `nginx -s quit`) so that valgrind writes each process's summary, and
# checks its logs (tests/harness/memcheck.rs). A test fails on: an invalid read, write or
# free, or a system call given unaddressable memory, anywhere in nginx; a use of an
# uninitialised value or a definite leak whose stack goes through our modules; an nginx
# process that ended without memcheck's summary. Bounds on how long nginx takes to answer
# are stretched --scale times (NGX_ASE_TIME_SCALE); the tests' own timeouts are not.
#
#   scripts/valgrind.sh [--no-build] [--all] [--scale N] [--threads N] [FILE...]
#   FILE          a test file (tests/FILE.rs); default: the set below
#   --all         every integration test file
#   --no-build    use build/vendored and target/double as they are
#   --scale N     NGX_ASE_TIME_SCALE (default 10)
#   --threads N   tests run at once (cargo's --test-threads; default: cargo's)
# NGX_ASE_WRAPPER, when set, replaces the valgrind command line below.
#
# The default set and the cases it covers:
#   smoke            allowed, blocked, both responses reported
#   request_check    allowed, blocked, a user header, a slow ASE (timeout, fail open), every
#                    node down (fail open, fail closed), garbage answers, clients that leave
#                    mid-check, a wrong token
#   request_payload  a POST with a body, HTTP/2, long URLs, many headers, the size limit
#   status_page      the status page (JSON, Prometheus, all workers), counters over a reload
#   reliability      bad ASE answers (500, 418, garbage, too large, reset, a body cut short,
#                    a timeout), thousands of clients leaving mid-check, ten reloads and the
#                    ASE killed and restarted under load, oversized and pipelined requests
#                    (its binary upgrade starts nginx itself, outside valgrind)
#   channel          failover to a backup and back, every node down (the breaker), the ASE
#                    coming back (recovery), a reload under load, keep-alive
#   tls              TLS to the ASE verified against its certificate, failover from a plain
#                    primary to a TLS backup (allowed and blocked through it)
#   secrets          the former script's sequence, at debug level: allowed with a user
#                    header, blocked, fail closed, ASE answers 500, garbage, reset, a body cut
#                    short, a slow ASE failing open and closed, a reload, a dead ASE
#   response_reports every kind of response reported (a_hanging_ase_does_not_slow_responses
#                    is left out: it asserts that no response takes 500 ms, which memcheck's
#                    slowness breaks)
# Logs of a test with findings are kept in target/valgrind/<nginx prefix>/. Exit 0 = clean.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

DEFAULT_FILES=(smoke request_check request_payload status_page reliability channel tls secrets response_reports)
# Timing assertions that cannot hold with nginx 10-50 times slower.
SKIP=(a_hanging_ase_does_not_slow_responses)

build=1 scale=10 threads= files=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --all) files=(); for f in "$ROOT"/tests/*.rs; do files+=("$(basename "$f" .rs)"); done ;;
        --scale) scale="$2"; shift ;;
        --threads) threads="$2"; shift ;;
        -h|--help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown argument: $1 (see --help)" ;;
        *) [ -f "$ROOT/tests/$1.rs" ] || die "no test file tests/$1.rs"; files+=("$1") ;;
    esac
    shift
done
[ ${#files[@]} -gt 0 ] || files=("${DEFAULT_FILES[@]}")
[[ "$scale" =~ ^[1-9][0-9]*$ ]] || die "--scale needs a positive integer"

ensure_rust
ensure_packages valgrind curl openssl python3
if [ $build -eq 1 ]; then
    "$ROOT/scripts/build.sh" --nginx vendored
    say "building the ASE test double"
    (cd "$ROOT" && cargo build --release -p ase-double --target-dir "$ROOT/target/double")
fi

# --trace-children: a binary upgrade (USR2) execs nginx again.
export NGX_ASE_WRAPPER="${NGX_ASE_WRAPPER:-valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,possible \
--errors-for-leak-kinds=definite --num-callers=40 --trace-children=yes \
--suppressions=$ROOT/tests/valgrind.supp}"
export NGX_ASE_TIME_SCALE="$scale" NGX_ASE_FLAVOUR=vendored
rm -rf "$ROOT/target/valgrind"

skip_args=()
for s in "${SKIP[@]}"; do skip_args+=(--skip "$s"); done
results=()
status=0
started=$(date +%s)
cd "$ROOT"
for f in "${files[@]}"; do
    say "tests/$f.rs under $(cut -d' ' -f1-2 <<<"$NGX_ASE_WRAPPER") (time scale $scale)"
    t0=$(date +%s)
    log="$(mktemp)"
    rc=0
    cargo test --release -p ngx-ase-tests --target-dir "$ROOT/target/tests" --test "$f" \
        -- "${skip_args[@]}" ${threads:+--test-threads "$threads"} 2>&1 | tee "$log" || rc=$?
    line="$(grep -E '^test result:' "$log" | tail -n1 || true)"
    results+=("$(printf '%-18s %4ss  %s' "$f" $(( $(date +%s) - t0 )) "${line:-no result (build failed?)}")")
    [ $rc -eq 0 ] || status=1
    rm -f "$log"
done

echo
echo "memcheck over the integration tests, $(( ($(date +%s) - started) / 60 )) min $(( ($(date +%s) - started) % 60 )) s:"
printf '  %s\n' "${results[@]}"
if [ -d "$ROOT/target/valgrind" ]; then
    echo "logs of the nginx runs with findings:"
    find "$ROOT/target/valgrind" -mindepth 1 -maxdepth 1 -type d | sed 's/^/  /'
fi
if [ $status -eq 0 ]; then
    echo "valgrind: clean"
else
    echo "valgrind: FAILED"
fi
exit $status
