# Step timing for scripts/test.sh: each step's start (time since the run began) and
# duration, and a table of them at the end, so a slow run shows where its time went.
# Source after common.sh.
# shellcheck shell=bash

STEPS_START=$SECONDS
STEPS=()            # "SECONDS|LABEL" of each finished step, in order
STEP_LABEL="" STEP_START=0

# clock SECONDS: "m:ss".
clock() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }

# step LABEL: ends the current step and starts LABEL.
step() {
    step_end
    STEP_LABEL="$1" STEP_START=$SECONDS
    say "[$(clock $((SECONDS - STEPS_START)))] $1"
}

# step_end: ends the current step, if any, and records its duration.
step_end() {
    [ -n "$STEP_LABEL" ] || return 0
    local d=$((SECONDS - STEP_START))
    STEPS+=("$d|$STEP_LABEL")
    say "[$(clock $((SECONDS - STEPS_START)))] took $(clock "$d"): $STEP_LABEL"
    STEP_LABEL=""
}

# step_record SECONDS LABEL: records a step timed elsewhere (a background job's).
step_record() { STEPS+=("$1|$2"); }

# steps_table: the table of every step's duration and the run's total.
steps_table() {
    step_end
    local s
    echo
    echo "time (m:ss)  step"
    for s in "${STEPS[@]}"; do
        printf '%11s  %s\n' "$(clock "${s%%|*}")" "${s#*|}"
    done
    printf '%11s  %s\n' "$(clock $((SECONDS - STEPS_START)))" "total (wall clock)"
}
