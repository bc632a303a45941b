#!/usr/bin/env bash
# Install a built artefact into a fresh venv and run the test suite against it.
# Usage: ci/venv-tests.sh NAME PACKAGE_SPEC [PYTEST_ARGS...]
#   PACKAGE_SPEC is a wheel path ("dist/x.whl[test]") or a source directory (".[test]").
# Environment:
#   PYTHON      interpreter the venv is made from (default: python on PATH)
#   TESTS_FROM  directory pytest runs in, e.g. an unpacked sdist (default: the repository root)
#   VENV_EXTRA  more requirements resolved together with PACKAGE_SPEC (e.g. "numpy==1.25.*")
# Extra environment (e.g. STREAMHSM_CYTHON_DEBUG=1) is passed through to the build.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 spec=$2
shift 2
tests_from=$(cd "${TESTS_FROM:-.}" && pwd)
venv=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-$name.XXXXXX")
trap 'rm -rf "$venv"' EXIT
"${PYTHON:-python}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086  # VENV_EXTRA is a list of requirements
"$venv/bin/python" -m pip install --quiet "$spec" ${VENV_EXTRA:-}
echo "== $name: $("$venv/bin/python" -c 'import sys, numpy, streamhsm, streamhsm._table as e
print(f"Python {sys.version.split()[0]}, numpy {numpy.__version__},",
      f"streamhsm {streamhsm.__version__}, {e.__file__}")')"
# pytest runs in $tests_from; its src/ (if any) is never on sys.path (src layout, importlib
# import mode), so the tests import the installed package
cd "$tests_from"
status=0
"$venv/bin/python" -m pytest -p no:cacheprovider "$@" || status=$?
if [ $status = 5 ]; then  # pytest: no test collected or selected
    echo "!! $name: pytest ran no test (selection: $*): a CI job must test something" >&2
    exit 1
fi
exit $status
