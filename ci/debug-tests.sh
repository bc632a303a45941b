#!/usr/bin/env bash
# Build with bounds checks, wraparound, initialisation checks and the kernel's own index checks
# on (STREAMHSM_CYTHON_DEBUG=1) and run the whole suite against that build.
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMHSM_CYTHON_DEBUG=1 bash ci/venv-tests.sh debug ".[test]"
