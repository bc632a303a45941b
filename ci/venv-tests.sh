#!/usr/bin/env bash
# Install a built artefact into a fresh venv and run the test suite against it.
# Usage: ci/venv-tests.sh NAME PACKAGE_SPEC [PYTEST_ARGS...]
#   PACKAGE_SPEC is a wheel path ("dist/x.whl[test]") or a source directory (".[test]").
# Extra environment (e.g. STREAMHSM_CYTHON_DEBUG=1) is passed through to the build.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 spec=$2
shift 2
venv=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-$name.XXXXXX")
trap 'rm -rf "$venv"' EXIT
python -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --no-cache-dir "$spec"
echo "== $name: $("$venv/bin/python" -c 'import streamhsm, streamhsm._engine as e; print(streamhsm.__version__, e.__file__)')"
# run from a directory without src/ on the path: the tests must import the installed package
"$venv/bin/python" -m pytest -p no:cacheprovider "$@"
