#!/usr/bin/env bash
# Static checks: mypy --strict over the Python modules (with the hand-written .pyi stubs of the
# compiled modules; needs no build), and stubtest comparing those stubs with the installed
# compiled modules (so stubs cannot rot; needs the package installed in the current python).
#
#   ci/typecheck.sh             # both
#   ci/typecheck.sh mypy        # mypy only (CI runs it beside the first build)
#   ci/typecheck.sh stubtest    # stubtest only
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
if [ "$what" != stubtest ]; then
    t0=$SECONDS
    python -m mypy
    echo "mypy: $((SECONDS - t0)) s"
fi
if [ "$what" != mypy ]; then
    t0=$SECONDS
    # run stubtest from outside the tree so it inspects the installed package
    (cd "${TMPDIR:-/tmp}" && python -m mypy.stubtest streamhsm._table streamhsm._instance \
        streamhsm._testing streamhsm.driver._idmap streamhsm.tools._floor streamhsm.driver._core \
        streamhsm.driver._calls)
    echo "stubtest: $((SECONDS - t0)) s"
fi
