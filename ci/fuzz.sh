#!/usr/bin/env bash
# Fuzz the package with atheris (libFuzzer for Python), against the package installed in the
# current python: four harnesses (fuzz/fuzz_*.py) for a bounded time each with fixed seeds, then
# every kept crash input (tests/fuzz_regressions/) replayed in its own process.
#
#   ci/fuzz.sh                   # bounded: 20 s per harness, seed 1 (about 2 minutes in total)
#   FUZZ_SECONDS=1800 FUZZ_SEED=7 FUZZ_CORPUS_DIR=~/streamhsm-corpus ci/fuzz.sh   # a longer run
#
# FUZZ_CORPUS_DIR keeps the corpora (one directory per harness) so a later run, or
# ci/asan-tests.sh, continues from them. Findings are copied to FUZZ_ARTIFACTS (default
# $TMPDIR/streamhsm-fuzz-artifacts) and printed in base64 (`base64 -d` gives the input back);
# replay one with `python fuzz/replay.py TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-20}
seed=${FUZZ_SEED:-1}
artifacts=${FUZZ_ARTIFACTS:-${TMPDIR:-/tmp}/streamhsm-fuzz-artifacts}
# atheris ships manylinux wheels (CPython 3.11 x86_64 included). Where pip has to build it from
# source it needs clang with libFuzzer: install that (as root, Debian/Ubuntu) and retry.
if ! python -c "import atheris" 2>/dev/null; then
    if ! python -m pip install --quiet atheris; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && apt-get install -y -qq clang libclang-rt-dev >/dev/null
            CLANG_BIN=$(command -v clang) python -m pip install --quiet atheris
        else
            echo "atheris has no wheel here and cannot be built (needs clang with libFuzzer)"
            exit 1
        fi
    fi
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-fuzz.XXXXXX")
export STREAMHSM_FUZZ_SHM_PREFIX="streamhsm-fuzz-$$"
cleanup() {
    rm -rf "$work"
    rm -rf /dev/shm/"$STREAMHSM_FUZZ_SHM_PREFIX"-*   # segments, FIFOs, dirs a crash left behind
}
trap cleanup EXIT
corpora=${FUZZ_CORPUS_DIR:-$work/corpus}
failed=()
for target in snapshots shm dispatch driver; do
    echo "== fuzz $target: ${seconds} s, seed $seed"
    mkdir -p "$corpora/$target" "$work/artifacts"
    start=$SECONDS
    if (cd "$work" && TMPDIR="$work" python "$root/fuzz/run.py" "$target" --seconds "$seconds" \
            --seed "$seed" --corpus "$corpora/$target" --artifacts "$work/artifacts" \
            >"$work/$target.log" 2>&1); then
        grep -E "^(Done|stat::number_of_executed_units)" "$work/$target.log" || true
    else
        failed+=("fuzz $target")
        echo "!! fuzz $target found something after $((SECONDS - start)) s:"
        grep -v -E "^(INFO: Instrumenting|#[0-9]+)" "$work/$target.log" | tail -60
    fi
done
if compgen -G "$work/artifacts/*" >/dev/null; then
    mkdir -p "$artifacts"
    for f in "$work"/artifacts/*; do
        cp "$f" "$artifacts/"
        echo "== finding $(basename "$f") ($(stat -c %s "$f") bytes, copied to $artifacts), base64:"
        base64 -w 100 "$f" | head -c 20000
        echo
    done
fi
echo "== replay of the kept crash inputs (tests/fuzz_regressions), one process each"
n=0
for dir in tests/fuzz_regressions/*/; do
    target=$(basename "$dir")
    for f in "$dir"*; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        if ! STREAMHSM_FUZZ_TIMEOUT=10 timeout 60 python fuzz/replay.py "$target" "$f" \
                >"$work/replay.log" 2>&1; then
            failed+=("replay $f")
            echo "!! $f:"; tail -5 "$work/replay.log"
        fi
    done
done
echo "replayed $n inputs"
if [ ${#failed[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "fuzzing found nothing"
