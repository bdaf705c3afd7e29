#!/usr/bin/env bash
# Builds everything and runs every test: unit tests, then the integration tests (a real
# nginx with the modules, the ASE test double, a backend) against each nginx build. Each
# step's duration is shown, and a table of them at the end.
# Installs what is missing (Debian packages) when run as root.
#
#   scripts/test.sh                 everything; the integration tests in full against the
#                                   vendored build, a subset against the system and static
#                                   builds (FLAVOUR_TESTS below says which and why)
#   scripts/test.sh --full          the same, with every integration test against every build
#   scripts/test.sh --flavour F     integration tests against one build only (vendored|system|static), in full
#   scripts/test.sh -- FILTER       passes FILTER to the integration tests (cargo test FILTER)
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/steps.sh"

flavours=(vendored system static)
filter=()
full=0
while [ $# -gt 0 ]; do
    case "$1" in
        --flavour) flavours=("$2"); full=1; shift 2 ;;
        --full) full=1; shift ;;
        --) shift; filter=("$@"); full=1; break ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
# The system and static builds run the same Rust code as the vendored one; what differs is
# how it is built and linked: Debian's nginx 1.22 and its struct layouts and configure
# flags (system), the modules compiled into nginx (static). These integration tests cross
# every place where that shows: loading and directives (smoke, config_check), the request
# and its headers as nginx parsed them (request_check, request_payload), the response
# filter (response_reports), the ASE connection on nginx's event loop and TLS (channel,
# tls), the status page's handler and shared memory (status_page). The rest (timers,
# failover, health, load) is engine logic the vendored build covers in full.
FLAVOUR_TESTS=(smoke config_check request_check request_payload response_reports channel tls status_page)

ensure_rust
# chromium: the status page's browser test (tests/status_browser.rs) runs it headless;
# lintian and dpkg-dev: the Debian package's test.
# g++: the fuzz targets' libFuzzer. All installed here, before the background builds start:
# two apt-gets at once would fight over dpkg's lock.
step "installing missing packages"
ensure_packages "${BUILD_PACKAGES[@]}" g++ nginx nginx-dev curl openssl python3 lintian dpkg-dev chromium haproxy

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
# run LABEL CMD...: runs a cargo test command, keeps its "test result" lines for the total.
run() {
    local label="$1"; shift
    step "$label"
    local log rc=0
    log="$(mktemp)"
    "$@" 2>&1 | tee "$log" || rc=$?
    grep -E '^test result:' "$log" >> "$results" || true
    rm -f "$log"
    return $rc
}

# build_flavour F: the nginx build F and the modules for it.
build_flavour() {
    case "$1" in
        # --with-debug, as the vendored build has it: the tests' debug-level checks run too.
        static) "$ROOT/scripts/build.sh" --static --with-debug ;;
        *) "$ROOT/scripts/build.sh" --nginx "$1" ;;
    esac
}
# Later builds (the other flavours, the fuzz targets, test-nginx-src.sh's nginx) start in
# the background at the lowest CPU priority, right after the first: they take the CPU the
# lints and unit tests leave, and most of it while the integration tests wait on timers
# and loopback I/O. Best effort: each step that needs one builds it again (a no-op when
# it is there) after waiting for the background, and fails there if it does not build.
later_builds=()
for f in "${flavours[@]}"; do later_builds+=("flavour $f"); done
if [ ${#filter[@]} -eq 0 ]; then later_builds+=("fuzz targets" "the user's nginx (test-nginx-src.sh)"); fi
first="${later_builds[0]#flavour }"
step "building the $first flavour"
build_flavour "$first"
bg_log="$ROOT/target/test-background.log"
bg_times="$(mktemp)"
mkdir -p "$ROOT/target"
(
    renice -n 19 -p "$BASHPID" >/dev/null || true
    for b in "${later_builds[@]:1}"; do
        t=$SECONDS
        echo "==> background: $b" >&2
        case "$b" in
            "flavour "*) build_flavour "${b#flavour }" ;;
            "fuzz targets") "$ROOT/scripts/fuzz.sh" --build-only ;;
            *) "$ROOT/scripts/test-nginx-src.sh" --build-only ;;
        esac || echo "==> background: $b failed; its step builds it again" >&2
        echo "$((SECONDS - t))|background: building $b" >>"$bg_times"
    done
) </dev/null >"$bg_log" 2>&1 &
bg_pid=$!
trap 'kill "$bg_pid" 2>/dev/null || true; rm -f "$results" "$bg_times"' EXIT
# process_tree PID: PID and its descendants, parents first.
process_tree() {
    local c
    echo "$1"
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do process_tree "$c"; done
}
# wait_built ITEM: waits until the background has built ITEM (or has ended).
wait_built() {
    [ -n "${bg_pid:-}" ] || return 0
    step "waiting for the background to build $1"
    while kill -0 "$bg_pid" 2>/dev/null && ! grep -qF "|background: building $1" "$bg_times"; do sleep 2; done
}
# wait_background: waits for the background builds (once), then shows their log's outline.
wait_background() {
    [ -n "${bg_pid:-}" ] || return 0
    step "waiting for the background builds (log: $bg_log)"
    # Nothing runs in the foreground now: back to normal priority, or on a busy machine
    # every other process would go first.
    renice -n 0 -p $(process_tree "$bg_pid") >/dev/null 2>&1 || true
    wait "$bg_pid" || true
    bg_pid=""
    grep -E '^(==>|error|warning: .*failed)' "$bg_log" | sed 's/\x1b\[[0-9;]*m//g' | sed 's/^/    /' >&2 || true
    local line
    while IFS= read -r line; do step_record "${line%%|*}" "${line#*|}"; done <"$bg_times"
}
step "building the ASE test double"
(cd "$ROOT" && cargo build --release -p ase-double --target-dir "$ROOT/target/double")

status=0
cd "$ROOT"
product=(-p ngx-ase-shared -p ngx-ase-glue -p ngx-ase-common -p ngx-ase-request -p ngx-ase-response)
# lint NAME CMD...: a lint step, counted in the total as one test.
lint() {
    local name="$1"; shift
    step "lint: $name"
    if "$@"; then
        echo "test result: ok. 1 passed; 0 failed;" >> "$results"
    else
        echo "test result: FAILED. 0 passed; 1 failed;" >> "$results"
        status=1
    fi
}
lint "rustfmt (rustfmt.toml)" cargo fmt --all --check
lint "rustfmt, the fuzz crate" sh -c 'cd fuzz && cargo fmt --check'
lint "clippy on the product crates, warnings are errors" \
    env NGX_CONFIGURE_ARGS="$VENDORED_CONFIGURE_ARGS" cargo clippy --release --all-targets "${product[@]}" \
    --features ngx/vendored,ngx-ase-common/fault-injection --target-dir "$ROOT/target/vendored" -- -D warnings
run "unit tests: shared code and the three modules" \
    env NGX_CONFIGURE_ARGS="$VENDORED_CONFIGURE_ARGS" cargo test --release --no-fail-fast "${product[@]}" \
    --features ngx/vendored --target-dir "$ROOT/target/vendored" || status=1
run "unit tests: the ASE test double" \
    cargo test --release -p ase-double --target-dir "$ROOT/target/double" || status=1
if [ ${#filter[@]} -eq 0 ]; then
    step "unit tests: the benchmark's statistics and report (bench/*.py)"
    log="$(mktemp)"
    python3 -m unittest discover -s "$ROOT/bench" 2>&1 | tee "$log" || true
    n=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$log")
    if [ "$(tail -n1 "$log")" = OK ]; then
        echo "test result: ok. ${n:-0} passed; 0 failed;" >> "$results"
    else
        echo "test result: FAILED. 0 passed; ${n:-1} failed;" >> "$results"
        status=1
    fi
    rm -f "$log"
fi
tests_cmd=(cargo test --release --no-fail-fast -p ngx-ase-tests --target-dir "$ROOT/target/tests")
step "building the integration tests"
"${tests_cmd[@]}" --no-run
# integration F: the integration tests against the build F.
integration() {
    local f="$1" which=()
    if [ "$f" != vendored ] && [ "$full" -eq 0 ]; then
        for t in "${FLAVOUR_TESTS[@]}"; do which+=(--test "$t"); done
        run "integration tests against the $f nginx: ${FLAVOUR_TESTS[*]}" \
            env NGX_ASE_FLAVOUR="$f" "${tests_cmd[@]}" "${which[@]}" || status=1
    else
        run "integration tests against the $f nginx" \
            env NGX_ASE_FLAVOUR="$f" "${tests_cmd[@]}" -- "${filter[@]}" || status=1
    fi
}
# The first flavour's now, while the background builds the rest.
integration "$first"
if [ ${#filter[@]} -eq 0 ]; then
    # The demo runs to the end and shows each of its steps.
    step "the demo (scripts/demo.sh), non-interactively"
    log="$(mktemp)"
    if "$ROOT/scripts/demo.sh" </dev/null >"$log" 2>&1 \
        && grep -q '^403$' "$log" && grep -q 'ase=block' "$log" && grep -q 'ase=fail_open' "$log" \
        && grep -q 'is down' "$log" && grep -q '"scope": "all_workers"' "$log"; then
        echo "demo: every step shown"
        echo "test result: ok. 1 passed; 0 failed;" >> "$results"
    else
        cat "$log"
        echo "test result: FAILED. 0 passed; 1 failed;" >> "$results"
        status=1
    fi
    rm -f "$log"
fi
# run_script LABEL SCRIPT: runs a test script whose last line is "N passed, N failed".
run_script() {
    step "$1"
    local log rc=0
    log="$(mktemp)"
    "$2" 2>&1 | tee "$log" || rc=$?
    tail -n1 "$log" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/test result: x. \1 passed; \2 failed;/p' >> "$results"
    grep -q '^[0-9]* passed, [0-9]* failed' <(tail -n1 "$log") || echo "test result: FAILED. 0 passed; 1 failed;" >> "$results"
    rm -f "$log"
    return $rc
}
if [ ${#filter[@]} -eq 0 ]; then
    run_script "ase-check against the ASE double (scripts/test-ase-check.sh)" "$ROOT/scripts/test-ase-check.sh" || status=1
    # The installer's tests need only the system build (built first in the background),
    # and leave the CPU to the other background builds while they wait on nginx -t.
    wait_built "flavour system"
    step "building the system flavour (built in the background: a no-op unless that failed)"
    build_flavour system
    run_script "install script tests" "$ROOT/scripts/test-install.sh" || status=1
fi
wait_background
for f in "${flavours[@]:1}"; do
    step "building the $f flavour (built in the background: a no-op unless that failed)"
    build_flavour "$f"
    integration "$f"
done
if [ ${#filter[@]} -eq 0 ]; then
    # 5 s of new inputs per target; every committed corpus input and regression replays in
    # full first. Longer runs: scripts/fuzz.sh SECONDS.
    run "fuzzing: every target for 5 s after replaying its corpus (scripts/fuzz.sh)" "$ROOT/scripts/fuzz.sh" 5 || status=1
    run_script "building for a user's nginx (scripts/build.sh --nginx-src)" "$ROOT/scripts/test-nginx-src.sh" || status=1
    # Its last line may add ", N skipped" (not root: no dpkg -i).
    run_script "the Debian package (scripts/test-package.sh)" "$ROOT/scripts/test-package.sh" || status=1
fi

passed=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^passed;/) n += $(i-1) } END { print n + 0 }' "$results")
failed=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^failed;/) n += $(i-1) } END { print n + 0 }' "$results")
[ "${failed:-0}" -eq 0 ] || status=1
[ "${passed:-0}" -gt 0 ] || { warn "no test ran"; status=1; }
steps_table
echo
echo "${passed:-0} passed, ${failed:-0} failed"
exit $status
