#!/usr/bin/env bash
# AddressSanitizer job: build the package with -fsanitize=address from a clean copy of the tree,
# install it into a fresh venv, then run every test in tests/ (the kept fuzz crash inputs
# included, through tests/fuzz/test_regressions.py) and a replay of the fuzz seed corpora (plus
# the corpora of ci/fuzz.sh if FUZZ_CORPUS_DIR names them) with the ASan runtime preloaded.
# Fails on any test failure and on any ASan report, in this process or any child.
#
# benchmarks/ is not run here: it measures speed, which means nothing under ASan.
#
# ASAN_VENV=DIR keeps the ASan venv in DIR and reuses it when it exists (local iteration: the
# build is the slow part); by default a fresh venv is built and removed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-asan.XXXXXX")
export STREAMHSM_FUZZ_SHM_PREFIX="streamhsm-asan-$$"
trap 'rm -rf "$work" /dev/shm/"$STREAMHSM_FUZZ_SHM_PREFIX"-*' EXIT
venv=${ASAN_VENV:-$work/venv}
py=$venv/bin/python

if [ ! -x "$py" ]; then
    # A clean copy: in-place build products (build/, *.so) must not end up in the ASan build.
    mkdir "$work/src"
    tar --exclude=./.git --exclude=./build --exclude=./dist --exclude='*.so' \
        --exclude='*.egg-info' -cf - . | tar -xf - -C "$work/src"
    python -m venv "$venv"
    "$py" -m pip install --quiet --upgrade pip
    # setup.py appends -O3 after CFLAGS; a compiler wrapper puts -O1 last so it wins (faster
    # to build, and ASan reports map cleanly onto the source).
    printf '#!/bin/sh\nexec gcc "$@" -O1\n' >"$work/cc"
    chmod +x "$work/cc"
    CC="$work/cc" CFLAGS="-fsanitize=address -fno-omit-frame-pointer -O1 -g" \
        LDFLAGS="-fsanitize=address" \
        "$py" -m pip install --quiet --no-cache-dir "$work/src[test]"
fi
sos=$(find "$venv" -path '*/streamhsm/*.so')
for so in $sos; do
    if ! nm -D "$so" | grep __asan_init >/dev/null; then
        echo "not built with ASan: $so"
        exit 1
    fi
done
echo "== asan: $(echo "$sos" | wc -l) compiled modules built with -fsanitize=address"

mkdir "$work/asan"
export LD_PRELOAD
LD_PRELOAD=$(gcc -print-file-name=libasan.so)
# detect_leaks=0: CPython keeps its heap alive at exit (not ours to report).
# allocator_may_return_null + max_allocation_size_mb: a file asking for gigabytes gets a
# MemoryError (a test failure) instead of exhausting the machine.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=3072:handle_segv=1:handle_sigbus=1:abort_on_error=1:detect_stack_use_after_return=0:log_path=$work/asan/report"
status=0
echo "== asan: tests/"
"$py" -m pytest -p no:cacheprovider -q tests || status=1
echo "== asan: fuzz seed corpora${FUZZ_CORPUS_DIR:+ and the corpora in $FUZZ_CORPUS_DIR}"
for target in snapshots shm dispatch driver; do
    dirs=()
    if [ -n "${FUZZ_CORPUS_DIR:-}" ] && [ -d "$FUZZ_CORPUS_DIR/$target" ]; then
        dirs+=("$FUZZ_CORPUS_DIR/$target")
    fi
    (cd "$work" && TMPDIR="$work" "$py" "$root/fuzz/replay.py" "$target" --seeds "${dirs[@]}" \
        | tail -1) || { echo "!! replay $target failed"; status=1; }
done
unset LD_PRELOAD
if compgen -G "$work/asan/report*" >/dev/null; then
    echo "!! AddressSanitizer reports:"
    cat "$work"/asan/report*
    status=1
else
    echo "== asan: no AddressSanitizer report"
fi
exit $status
