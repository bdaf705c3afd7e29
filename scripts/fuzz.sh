#!/usr/bin/env bash
# Fuzzes the request payload builder, the channel's engine reading an ASE answer (the real
# engine code over an in-memory connection), the directive value parsers and the response report builder with
# libFuzzer (cargo-fuzz, AddressSanitizer), each target for SECONDS (default 20).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   replay fuzz/corpus and fuzz/regressions, then fuzz
#   scripts/fuzz.sh --minimize [TARGET...]  merge what runs found (fuzz/corpus-new/, ignored
#                                           by git) into fuzz/corpus/, minimized, for a commit
#   scripts/fuzz.sh --list                  the targets
#   scripts/fuzz.sh --build-only            build the targets, run nothing (scripts/test.sh
#                                           builds them while other steps run)
#
# Ends with a cargo-test-style "test result:" line (one test per target: replay + run).
# A crash leaves its input in fuzz/artifacts/TARGET/ and fails the run; keep it as
# fuzz/regressions/TARGET/NAME once fixed so the replay covers it.
#
# Stable Rust: cargo-fuzz passes -Zsanitizer=address, which stable rustc accepts with
# RUSTC_BOOTSTRAP=1 (its AddressSanitizer runtime ships with the stable toolchain).
# FUZZ_SANITIZER=none builds without one (only the coverage instrumentation, all stable
# flags) where that fails. Inside fuzz/, `cargo test --release` replays the corpus with no
# libFuzzer at all.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

FUZZ="$ROOT/fuzz"
ALL_TARGETS=(request_payload ase_answer directive_values response_report)
CARGO_FUZZ_VERSION=0.13.2
sanitizer="${FUZZ_SANITIZER:-address}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bindir="$FUZZ/target/$triple/release"

mode=run
seconds=20
case "${1:-}" in
    --minimize) mode=minimize; shift ;;
    --list) printf '%s\n' "${ALL_TARGETS[@]}"; exit 0 ;;
    --build-only) mode=build; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    ''|*[!0-9]*) ;;
    *) seconds="$1"; shift ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target $t (have: ${ALL_TARGETS[*]})"
done

ensure_rust
ensure_packages "${BUILD_PACKAGES[@]}" g++
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked || die "cargo install cargo-fuzz failed"
fi

# nginx-sys needs NGINX's headers and configure output: reuse those of the vendored build
# (scripts/build.sh) when there is one, instead of building NGINX once more (minutes).
if [ -z "${NGINX_BUILD_DIR:-}" ]; then
    for objs in $(ls -dt "$ROOT"/target/vendored/*/build/nginx-sys-*/out/objs 2>/dev/null); do
        src="$(cut -d'"' -f2 "$objs/last-build-info" 2>/dev/null || true)"
        if [ -f "$objs/ngx_auto_config.h" ] && [ -f "$src/src/core/nginx.h" ]; then
            export NGINX_BUILD_DIR="$objs" NGINX_SOURCE_DIR="$src"
            break
        fi
    done
fi

say "building the fuzz targets (sanitizer: $sanitizer; nginx headers from ${NGINX_BUILD_DIR:-a vendored NGINX build, a few minutes the first time})"
# cargo-fuzz adds -Cdebug-assertions (overflow checks too) and --cfg fuzzing.
(cd "$ROOT" && RUSTC_BOOTSTRAP=1 cargo fuzz build --fuzz-dir "$FUZZ" -O -s "$sanitizer" --features libfuzzer) \
    || die "cargo fuzz build failed (FUZZ_SANITIZER=none builds without AddressSanitizer)"

[ "$mode" = build ] && exit 0

# ASan: a leak is a finding too; no core files.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:disable_coredump=1}"
dict_args() { [ -f "$FUZZ/dict/$1.dict" ] && echo "-dict=$FUZZ/dict/$1.dict" || true; }

if [ "$mode" = minimize ]; then
    for t in "${targets[@]}"; do
        new="$FUZZ/corpus-new/$t"
        mkdir -p "$new" "$FUZZ/corpus/$t"
        merged="$(mktemp -d)"
        say "$t: merging $(ls "$new" | wc -l) new and $(ls "$FUZZ/corpus/$t" | wc -l) committed inputs"
        # the smallest set of inputs that covers every edge the union covers (hit counts
        # left out: they would keep hundreds more inputs for little)
        "$bindir/$t" -set_cover_merge=1 -use_counters=0 "$merged" "$FUZZ/corpus/$t" "$new" 2>&1 \
            | grep -a 'MERGE-OUTER: [0-9]* new files' || true
        rm -rf "${FUZZ:?}/corpus/$t" && mv "$merged" "$FUZZ/corpus/$t" && chmod 755 "$FUZZ/corpus/$t"
        rm -rf "${new:?}"
        echo "$t: $(ls "$FUZZ/corpus/$t" | wc -l) inputs, $(cat "$FUZZ/corpus/$t"/* | wc -c) bytes"
    done
    exit 0
fi

passed=0
failed=0
for t in "${targets[@]}"; do
    log="$FUZZ/target/fuzz-$t.log"
    mkdir -p "$FUZZ/corpus-new/$t" "$FUZZ/artifacts/$t"
    ok=1
    # 1. Every committed input and every kept crash reproducer, once.
    replay=("$FUZZ/corpus/$t")
    [ -d "$FUZZ/regressions/$t" ] && replay+=("$FUZZ/regressions/$t")
    if ! "$bindir/$t" -runs=0 "${replay[@]}" >"$log" 2>&1; then
        ok=0
        warn "$t: replaying the corpus failed:"; tail -n 30 "$log" >&2
    fi
    # 2. Fuzz. New inputs go to corpus-new/ (not committed; --minimize merges them).
    if [ $ok -eq 1 ]; then
        say "fuzzing $t for ${seconds}s"
        if "$bindir/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$FUZZ/artifacts/$t/" $(dict_args "$t") \
            "$FUZZ/corpus-new/$t" "$FUZZ/corpus/$t" >"$log" 2>&1; then
            grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs)' "$log" | tail -n 2 | sed "s/^/$t: /"
        else
            ok=0
            warn "$t: the fuzzer found a crash (log: $log):"
            grep -E -A25 '^==[0-9]+==|panicked at|deadly signal|Test unit written' "$log" | head -n 60 >&2 || tail -n 40 "$log" >&2
        fi
    fi
    if [ $ok -eq 1 ]; then
        echo "test fuzz::$t ... ok"; passed=$((passed + 1))
    else
        echo "test fuzz::$t ... FAILED"; failed=$((failed + 1))
    fi
done
echo
if [ $failed -eq 0 ]; then
    echo "test result: ok. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out"
else
    echo "test result: FAILED. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out"
    exit 1
fi
