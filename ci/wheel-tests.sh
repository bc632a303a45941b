#!/usr/bin/env bash
# Test the artefacts ci/build-wheels.sh left in wheelhouse/ (run it first):
#   - contents: the sdist and every wheel ship LICENSE; every wheel ships py.typed, a .pyi stub
#     beside each compiled module, the .pxd files, and no generated C;
#   - each wheel in a fresh venv of its own Python, tested by the sdist's own tests (the sdist
#     unpacked, pytest run there against the installed wheel): the whole suite on 3.11, the core
#     tests (tests/ without the long allocation test) on the other versions.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/pythons.sh
sdist=$(ls wheelhouse/streamhsm-*.tar.gz 2>/dev/null) \
    || { echo "no sdist in wheelhouse/: run ci/build-wheels.sh first" >&2; exit 1; }
wheels=(wheelhouse/streamhsm-*.whl)
python - "$sdist" "${wheels[@]}" <<'PY'
import re, sys, tarfile, zipfile

sdist, wheels = sys.argv[1], sys.argv[2:]
with tarfile.open(sdist) as tar:
    top = {n.split("/", 1)[1] for n in tar.getnames() if n.count("/") == 1}
    pkg_info = tar.extractfile(next(n for n in tar.getnames() if n.endswith("/PKG-INFO"))).read()
if "LICENSE" not in top or b"License-File: LICENSE" not in pkg_info:
    sys.exit(f"bad sdist {sdist}: no LICENSE (top level: {sorted(top)})")
for wheel in wheels:
    names = set(zipfile.ZipFile(wheel).namelist())
    need = ["streamhsm/py.typed", "streamhsm/_kernel.pxd", "streamhsm/_table.pxd",
            "streamhsm/capi.pxd", "streamhsm/driver/_idmap.pxd",
            "streamhsm/_table.pyi", "streamhsm/driver/_core.pyi", "streamhsm/driver/_idmap.pyi",
            "streamhsm/tools/_floor.pyi"]
    compiled = [n for n in names if n.endswith(".so")]
    need += [re.sub(r"\.cpython-.*\.so$", ".pyi", n) for n in compiled]  # a stub for each
    missing = sorted(set(need) - names)
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        missing.append("streamhsm-*.dist-info/licenses/LICENSE")
    generated = sorted(n for n in names if n.endswith(".c"))
    if missing or generated or len(compiled) != 4:
        sys.exit(f"bad wheel {wheel}: missing {missing}, generated C shipped {generated}, "
                 f"compiled modules {compiled}")
    print(f"wheel contents ok: {wheel} ({len(names)} files)")
PY

tests=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-sdist.XXXXXX")
trap 'rm -rf "$tests"' EXIT
tar -xzf "$sdist" -C "$tests"
tests_from=$(ls -d "$tests"/streamhsm-*)
for wheel in "${wheels[@]}"; do
    tag=$(basename "$wheel" | cut -d- -f3)  # cp311
    version="${tag:2:1}.${tag:3}"
    if [ "$version" = 3.11 ]; then
        args=()  # the whole suite (tests and benchmark smoke runs), as configured in the sdist
    else
        args=(tests --ignore=tests/driver/test_allocations.py)
    fi
    PYTHON=$(ci_python "$version") TESTS_FROM=$tests_from \
        bash ci/venv-tests.sh "wheel-$tag" "$wheel[test]" -q "${args[@]}"
done
