#!/usr/bin/env bash
# Tests scripts/ase-check: runs tests/ase_check/run.py, which runs every unittest module of
# tests/ase_check/ and counts each check:
#   test_units   the unknown-API shape, reading an answer by the modules' rules, what it sends,
#                URLs, times, percentiles (no ASE);
#   test_double  against the ASE double (tests/ase-double) in each of its modes: keep-alive on
#                and off, a token required (missing, wrong, right) or not, API definitions,
#                faults (a 500, a 503 with another body, a slow answer, a reset, not HTTP);
#   test_tls     TLS: the right certificate by address and by name, one for another name, a CA
#                that did not sign it, verification off, mutual TLS with and without ours;
#   test_conf    --conf: nodes, tokens, TLS settings and ase_timeout from an nginx.conf;
#   test_runner  the runner (tests/pyrunner/, shared with tests/install) counts and shows
#                failures.
# Builds the double as scripts/test.sh does (target/double); uses loopback ports and openssl.
# Arguments go to run.py (-k PATTERN runs the matching tests). Last line: "N passed, M failed".
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

ensure_rust
ensure_packages openssl python3
say "building the ASE test double"
(cd "$ROOT" && cargo build -q --release -p ase-double --target-dir "$ROOT/target/double")
export ASE_DOUBLE_BIN="$ROOT/target/double/release/ase-double"
exec python3 -B "$ROOT/tests/ase_check/run.py" "$@"
