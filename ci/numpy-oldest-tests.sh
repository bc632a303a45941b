#!/usr/bin/env bash
# The oldest numpy the package declares (`numpy>=X` in pyproject's dependencies): the 3.11 wheel
# from wheelhouse/ (ci/build-wheel.sh 3.11) with numpy==X.* in a fresh venv: tests/ but the
# allocation tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/pythons.sh
wheel=$(ls wheelhouse/streamhsm-*-cp311-*.whl 2>/dev/null) \
    || { echo "no cp311 wheel in wheelhouse/: run ci/build-sdist.sh, ci/build-wheel.sh 3.11" >&2
         exit 1; }
py=$(ci_python 3.11)
oldest=$("$py" - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(next(m.group(1) for d in deps if (m := re.fullmatch(r"numpy>=([\d.]+)", d.replace(" ", "")))))
PY
)
# allocation-freedom (tracemalloc) is asserted on the current numpy (the other jobs), not here
PYTHON=$py VENV_EXTRA="numpy==$oldest.*" bash ci/venv-tests.sh "numpy-$oldest" "$wheel[test]" \
    -q tests -k "not allocation"
