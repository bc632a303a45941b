#!/usr/bin/env bash
# Static checks: mypy --strict over the Python modules, and stubtest comparing the hand-written
# .pyi stubs with the installed compiled modules (so stubs cannot rot).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m mypy
# run stubtest from outside the tree so it inspects the installed package
(cd "${TMPDIR:-/tmp}" && python -m mypy.stubtest streamhsm._table streamhsm._instance streamhsm._testing \
    streamhsm.driver._idmap \
    streamhsm.tools._floor streamhsm.driver._core streamhsm.driver._calls)
