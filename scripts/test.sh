#!/usr/bin/env bash
# Builds everything and runs every test: unit tests, then the integration tests (a real
# nginx with the modules, the ASE test double, a backend) against each nginx build.
# Installs what is missing (Debian packages) when run as root.
#
#   scripts/test.sh                 everything
#   scripts/test.sh --flavour F     integration tests against one build only (vendored|system|static)
#   scripts/test.sh -- FILTER       passes FILTER to the integration tests (cargo test FILTER)
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

flavours=(vendored system static)
filter=()
while [ $# -gt 0 ]; do
    case "$1" in
        --flavour) flavours=("$2"); shift 2 ;;
        --) shift; filter=("$@"); break ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

ensure_rust
# chromium: the status page's browser test (tests/status_browser.rs) runs it headless;
# lintian and dpkg-dev: the Debian package's test.
ensure_packages "${BUILD_PACKAGES[@]}" nginx nginx-dev curl openssl python3 lintian dpkg-dev chromium haproxy

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
# run LABEL CMD...: runs a cargo test command, keeps its "test result" lines for the total.
run() {
    local label="$1"; shift
    say "$label"
    local log rc=0
    log="$(mktemp)"
    "$@" 2>&1 | tee "$log" || rc=$?
    grep -E '^test result:' "$log" >> "$results" || true
    rm -f "$log"
    return $rc
}

for f in "${flavours[@]}"; do
    case "$f" in
        # --with-debug, as the vendored build has it: the tests' debug-level checks run too.
        static) "$ROOT/scripts/build.sh" --static --with-debug ;;
        *) "$ROOT/scripts/build.sh" --nginx "$f" ;;
    esac
done
say "building the ASE test double"
(cd "$ROOT" && cargo build --release -p ase-double --target-dir "$ROOT/target/double")

status=0
cd "$ROOT"
product=(-p ngx-ase-shared -p ngx-ase-glue -p ngx-ase-common -p ngx-ase-request -p ngx-ase-response)
# lint NAME CMD...: a lint step, counted in the total as one test.
lint() {
    local name="$1"; shift
    say "lint: $name"
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
    run "fuzzing: every target for 20 s (scripts/fuzz.sh)" "$ROOT/scripts/fuzz.sh" 20 || status=1
    say "unit tests: the benchmark's statistics and report (bench/*.py)"
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
for f in "${flavours[@]}"; do
    run "integration tests against the $f nginx" \
        env NGX_ASE_FLAVOUR="$f" cargo test --release --no-fail-fast -p ngx-ase-tests --target-dir "$ROOT/target/tests" \
        -- "${filter[@]}" || status=1
done
if [ ${#filter[@]} -eq 0 ]; then
    # The demo runs to the end and shows each of its steps.
    say "the demo (scripts/demo.sh), non-interactively"
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
    say "$1"
    local log rc=0
    log="$(mktemp)"
    "$2" 2>&1 | tee "$log" || rc=$?
    tail -n1 "$log" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/test result: x. \1 passed; \2 failed;/p' >> "$results"
    grep -q '^[0-9]* passed, [0-9]* failed' <(tail -n1 "$log") || echo "test result: FAILED. 0 passed; 1 failed;" >> "$results"
    rm -f "$log"
    return $rc
}
if [ ${#filter[@]} -eq 0 ]; then
    run_script "install script tests" "$ROOT/scripts/test-install.sh" || status=1
    run_script "ase-check against the ASE double (scripts/test-ase-check.sh)" "$ROOT/scripts/test-ase-check.sh" || status=1
    run_script "building for a user's nginx (scripts/build.sh --nginx-src)" "$ROOT/scripts/test-nginx-src.sh" || status=1
    # Its last line may add ", N skipped" (not root: no dpkg -i).
    run_script "the Debian package (scripts/test-package.sh)" "$ROOT/scripts/test-package.sh" || status=1
fi

passed=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^passed;/) n += $(i-1) } END { print n + 0 }' "$results")
failed=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^failed;/) n += $(i-1) } END { print n + 0 }' "$results")
[ "${failed:-0}" -eq 0 ] || status=1
[ "${passed:-0}" -gt 0 ] || { warn "no test ran"; status=1; }
echo
echo "${passed:-0} passed, ${failed:-0} failed"
exit $status
