#!/usr/bin/env bash
# bench/write-section.sh MD REPORT MARKER: puts a generated report (which carries its own
# "<!-- BEGIN MARKER: ... -->" and "<!-- END MARKER -->" lines) into MD in place of the
# section between the same markers, or at the end when MD has none (a new MD gets a title).
# Each benchmark run (scripts/bench.sh, --nginx system, --cache) replaces only its own.
set -euo pipefail
md=$1 report=$2 marker=$3
if [ -f "$md" ] && grep -qF "<!-- BEGIN $marker:" "$md" && grep -qF "<!-- END $marker -->" "$md"; then
    awk -v rep="$report" -v begin="<!-- BEGIN $marker:" -v end="<!-- END $marker -->" '
        index($0, begin) == 1 {while ((getline l < rep) > 0) print l; skip=1; next}
        index($0, end) == 1 {skip=0; next}
        !skip {print}' "$md" > "$md.new.$$" && mv -f "$md.new.$$" "$md"
elif [ -f "$md" ]; then
    { echo; cat "$report"; } >> "$md"
else
    { echo "# Benchmarks"; echo; cat "$report"; } > "$md"
fi
