#!/usr/bin/env bash
# Where a process calls malloc: records every malloc of PID for SECONDS through a uprobe on
# libc's malloc with DWARF call chains (perf), and prints the call sites (the first three
# frames that are not allocator plumbing), as calls per request given REQUESTS served in
# that time. Used by scripts/bench.sh --profile; needs root and a working perf.
#
#   bench/alloc-sites.sh PID SECONDS REQUESTS [TOP]
set -euo pipefail
pid="$1" secs="$2" requests="$3" top="${4:-25}"
libc=$(awk '$6 ~ /\/libc\.so/ {print $6; exit}' "/proc/$pid/maps")
[ -n "$libc" ] || { echo "alloc-sites: no libc mapped in $pid" >&2; exit 1; }
tmp=$(mktemp -d)
added=0
cleanup() {
    [ "$added" = 1 ] && perf probe -q -d 'ngxasealloc:*' >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
if ! perf probe -l 2>/dev/null | grep -q 'ngxasealloc:sites_malloc'; then
    perf probe -q -x "$libc" -a 'ngxasealloc:sites_malloc=malloc' >/dev/null 2>&1 \
        || { echo "alloc-sites: cannot add a uprobe on $libc malloc" >&2; exit 1; }
    added=1
fi
perf record -q -e ngxasealloc:sites_malloc --call-graph dwarf,8192 -p "$pid" -o "$tmp/perf.data" -- sleep "$secs" >/dev/null 2>&1
perf script -i "$tmp/perf.data" 2>/dev/null | awk -v requests="$requests" -v top="$top" '
    function short(s,   prev) {
        do { prev = s; gsub(/<[^<>]*>/, "", s) } while (s != prev)
        return s
    }
    function flush() {
        if (nframes_seen) { count[site]++; total++ }
        site = ""; depth = 0; nframes_seen = 0
    }
    /^[^ \t]/ { flush(); next }                      # a sample header line
    /^$/ { flush(); next }
    {
        nframes_seen = 1
        if (depth >= 3) next
        line = $0; sub(/^[ \t]+[0-9a-f]+ /, "", line)
        obj = line; sub(/^.* \(/, "", obj); sub(/\)$/, "", obj)
        sym = line; sub(/ \([^()]*\)$/, "", sym); sub(/\+0x[0-9a-f]+$/, "", sym)
        if (obj ~ /libc\.so/) next
        sym = short(sym); sub(/^::/, "", sym)
        if (sym ~ /^(from|into|clone|new|default)$/) next
        if (sym ~ /^(__GI___libc_malloc|__posix_memalign|alloc_impl|allocate|try_allocate_in|with_capacity|alloc::|exchange_malloc|new<|Box|malloc|__rust_alloc|__rdl_alloc|_ZN5alloc|do_reserve_and_handle|grow_|finish_grow|reserve|RawVec|from_iter|to_vec|copy_from_slice<|clone<|into_boxed|allocate_in|core::ops::function|call_once|new_uninit|try_new|::alloc_impl|box_new_uninit|\[unknown\])/) next
        site = site (depth ? " < " : "") sym
        depth++
    }
    END {
        flush()
        printf "%d malloc calls, %.1f per request (%d requests)\n", total, total / requests, requests
        n = 0
        for (s in count) order[++n] = s
        # sort by count, descending (portable: no gawk-only sorting)
        for (i = 2; i <= n; i++) { v = order[i]; j = i - 1; while (j > 0 && count[order[j]] < count[v]) { order[j + 1] = order[j]; j-- } order[j + 1] = v }
        for (i = 1; i <= n && i <= top; i++) printf "%6.2f  %s\n", count[order[i]] / requests, order[i]
    }'
