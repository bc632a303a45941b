#!/usr/bin/env bash
# Test one wheel from wheelhouse/ (ci/build-sdist.sh and ci/build-wheel.sh VERSION, run first):
#   - contents: the sdist ships LICENSE; the wheel ships py.typed, a .pyi stub beside each
#     compiled module, the .pxd files, its license, and no generated C;
#   - the wheel in a fresh venv of CPython VERSION, tested by the sdist's own tests (the sdist
#     unpacked, pytest run there against the installed wheel).
#
#   ci/wheel-tests.sh 3.11              # the whole suite, as the sdist configures it
#   ci/wheel-tests.sh 3.12 smoke        # the smoke suite (ci/pytest_smoke.py), well under a minute
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/pythons.sh
version=$1 suite=${2:-full}
tag=cp${version/./}
sdist=$(ls wheelhouse/streamhsm-*.tar.gz 2>/dev/null) \
    || { echo "no sdist in wheelhouse/: run ci/build-sdist.sh first" >&2; exit 1; }
wheel=$(ls wheelhouse/streamhsm-*-"$tag"-*.whl 2>/dev/null) \
    || { echo "no $tag wheel in wheelhouse/: run ci/build-wheel.sh $version first" >&2; exit 1; }
python - "$sdist" "$wheel" <<'PY'
import re, sys, tarfile, zipfile

sdist, wheel = sys.argv[1:]
with tarfile.open(sdist) as tar:
    top = {n.split("/", 1)[1] for n in tar.getnames() if n.count("/") == 1}
    pkg_info = tar.extractfile(next(n for n in tar.getnames() if n.endswith("/PKG-INFO"))).read()
if "LICENSE" not in top or b"License-File: LICENSE" not in pkg_info:
    sys.exit(f"bad sdist {sdist}: no LICENSE (top level: {sorted(top)})")
names = set(zipfile.ZipFile(wheel).namelist())
need = ["streamhsm/py.typed", "streamhsm/_kernel.pxd", "streamhsm/_table.pxd",
        "streamhsm/capi.pxd", "streamhsm/driver/_idmap.pxd",
        "streamhsm/_table.pyi", "streamhsm/driver/_core.pyi", "streamhsm/driver/_idmap.pyi",
        "streamhsm/tools/_floor.pyi"]
compiled = [n for n in names if n.endswith(".so")]
# a stub for each, except Cython's shared utility module (setup.py SHARED_UTILITY): it has no
# Python API of its own (the memoryview type and helpers the other modules import), and it must
# be there, since every other module imports it
need += [re.sub(r"\.cpython-.*\.so$", ".pyi", n) for n in compiled
         if not n.startswith("streamhsm/_cyutility.")]
if not any(n.startswith("streamhsm/_cyutility.") for n in compiled):
    need.append("streamhsm/_cyutility.*.so")
missing = sorted(set(need) - names)
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
    missing.append("streamhsm-*.dist-info/licenses/LICENSE")
generated = sorted(n for n in names if n.endswith(".c"))
if missing or generated or not compiled:
    sys.exit(f"bad wheel {wheel}: missing {missing}, generated C shipped {generated}, "
             f"compiled modules {compiled}")
print(f"wheel contents ok: {wheel} ({len(names)} files, {len(compiled)} compiled modules)")
PY

tests=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-sdist.XXXXXX")
trap 'rm -rf "$tests"' EXIT
tar -xzf "$sdist" -C "$tests"
tests_from=$(ls -d "$tests"/streamhsm-*)
case $suite in
    full) args=() ;;  # the whole suite (tests and benchmark smoke runs), as the sdist configures
    smoke) args=(-p pytest_smoke tests) ;;
    *) echo "unknown suite '$suite' (full or smoke)" >&2; exit 2 ;;
esac
# the smoke plugin is CI tooling (not in the sdist): from this checkout's ci/
PYTHONPATH="$PWD/ci${PYTHONPATH:+:$PYTHONPATH}" PYTHON=$(ci_python "$version") \
    TESTS_FROM=$tests_from bash ci/venv-tests.sh "wheel-$tag" "$wheel[test]" -q "${args[@]}"
