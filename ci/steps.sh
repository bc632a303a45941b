# Sourced by .ci/run: run CI steps with their times, in the foreground or as parallel jobs.
#
#   ci_step NAME CMD...     run CMD in the foreground; "### NAME" before it, "--- NAME: ok in N s"
#                           after it (CI_TIMES collects the line); a failure ends CI at once
#   ci_job NAME CMD...      queue CMD as a parallel job of the current tier
#   ci_jobs                 run the queued jobs, at most CI_JOBS (default: the CPU count) at a
#                           time; each output line is printed as it comes, prefixed "NAME: ";
#                           when one fails, the others are stopped and CI ends (fail fast)
#   ci_times                print every step's and job's time
#   ci_cleanup              stop running jobs, remove the logs (the caller's EXIT trap)
#
# A failed job's last 80 lines are printed again, unprefixed, after the others are stopped.
CI_JOBS=${CI_JOBS:-$(nproc 2>/dev/null || echo 2)}
CI_START=${CI_START:-$SECONDS}
CI_TIMES=()
CI_LOGS=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-ci-logs.XXXXXX")
_ci_names=()
_ci_cmds=()

# CPU seconds (user + system) of this shell's finished children, from `times` (run in this
# shell, not a subshell), into CI_CPU: beside the wall time it shows how much a step worked
# rather than waited for a loaded machine.
_ci_cpu() {
    times > "$CI_LOGS/.times"
    CI_CPU=$(_ci_cpu_of "$CI_LOGS/.times")
}
_ci_cpu_of() {  # FILE with the output of `times`: its children's user + system seconds
    awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); n += t[1] * 60 + t[2] }
                   printf "%.0f", n }' "$1" 2>/dev/null || echo "?"
}

ci_step() {
    local name=$1 t0=$SECONDS status=0 cpu0
    shift
    _ci_cpu
    cpu0=$CI_CPU
    echo "### $name"
    "$@" || status=$?
    if [ $status != 0 ]; then
        echo "!!! $name failed (exit $status) after $((SECONDS - t0)) s; CI stops here"
        ci_times
        exit 1
    fi
    _ci_cpu
    CI_TIMES+=("$(printf '%5d s  %5d s  %s' $((SECONDS - t0)) $((CI_CPU - cpu0)) "$name")")
    echo "--- $name: ok in $((SECONDS - t0)) s, $((CI_CPU - cpu0)) s CPU" \
        "(CI at $((SECONDS - CI_START)) s)"
}

ci_job() {
    _ci_names+=("$1")
    shift
    _ci_cmds+=("$(printf '%q ' "$@")")
}

# Stop every running job: each runs in a process group of its own (setsid), so its children go too.
_ci_stop_jobs() {
    local pid
    for pid in "$@"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true
    done
}

declare -A CI_RUNNING=()  # pid -> job name, for ci_cleanup

ci_jobs() {
    local -A start_of=()
    local next=0 pid status name slug cpu
    echo "### parallel jobs (at most $CI_JOBS at a time): ${_ci_names[*]}"
    while [ $next -lt ${#_ci_names[@]} ] || [ ${#CI_RUNNING[@]} -gt 0 ]; do
        while [ $next -lt ${#_ci_names[@]} ] && [ ${#CI_RUNNING[@]} -lt "$CI_JOBS" ]; do
            name=${_ci_names[$next]}
            slug=${name//[^A-Za-z0-9.-]/_}
            echo "=== $name: started (CI at $((SECONDS - CI_START)) s)"
            # the job's own process group; lines prefixed as they come; the log kept for failures
            setsid bash -o pipefail -c "{ ${_ci_cmds[$next]}; } 2>&1 \
                | tee '$CI_LOGS/$slug.log' | sed -u 's/^/$slug: /'; rc=\$?
                times > '$CI_LOGS/$slug.times'; exit \$rc" &
            pid=$!
            CI_RUNNING[$pid]=$name
            start_of[$pid]=$SECONDS
            next=$((next + 1))
        done
        status=0
        wait -n -p pid "${!CI_RUNNING[@]}" || status=$?
        name=${CI_RUNNING[$pid]}
        unset "CI_RUNNING[$pid]"
        if [ $status != 0 ]; then
            echo "!!! $name failed (exit $status) after $((SECONDS - start_of[$pid])) s;" \
                "stopping ${CI_RUNNING[*]:-nothing else}"
            _ci_stop_jobs "${!CI_RUNNING[@]}"
            echo "!!! last lines of $name:"
            tail -n 80 "$CI_LOGS/${name//[^A-Za-z0-9.-]/_}.log"
            ci_times
            exit 1
        fi
        slug=${name//[^A-Za-z0-9.-]/_}
        cpu=$(_ci_cpu_of "$CI_LOGS/$slug.times")
        CI_TIMES+=("$(printf '%5d s  %5s s  %s (parallel)' $((SECONDS - start_of[$pid])) "$cpu" \
            "$name")")
        echo "--- $name: ok in $((SECONDS - start_of[$pid])) s, $cpu s CPU" \
            "(CI at $((SECONDS - CI_START)) s)"
    done
    _ci_names=()
    _ci_cmds=()
}

# For the caller's EXIT trap: stop the jobs still running (CI interrupted), remove the logs.
ci_cleanup() {
    _ci_stop_jobs "${!CI_RUNNING[@]}"
    rm -rf "$CI_LOGS"
}

ci_times() {
    echo "### step times: wall, CPU (user + system; parallel jobs overlap):"
    printf '  %s\n' "${CI_TIMES[@]}"
    _ci_cpu
    echo "### CPU used by CI so far: $CI_CPU s (wall $((SECONDS - CI_START)) s on $(nproc) CPUs;" \
        "load now: $(cut -d' ' -f1-3 /proc/loadavg))"
}
