#!/usr/bin/env bash
# Every release artefact into wheelhouse/ (emptied first), one after the other: the sdist
# (ci/build-sdist.sh), then a manylinux wheel per CPython found of CI_PYTHON_VERSIONS (default
# 3.10-3.13, ci/pythons.sh) built from that sdist (ci/build-wheel.sh). .ci/run calls the two
# scripts itself, wheels side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/pythons.sh
start=$SECONDS
bash ci/build-sdist.sh
for version in $CI_PYTHON_VERSIONS; do
    if ci_python "$version" > /dev/null; then
        bash ci/build-wheel.sh "$version"
    else
        echo "== no CPython $version on this machine: no wheel for it"
    fi
done
echo "== wheelhouse/ (built in $((SECONDS - start)) s)"
ls -l wheelhouse
