#!/usr/bin/env bash
# Short soak (the full one is `python benchmarks/soak.py --ops 10000000`): random driver
# operations with the registry invariants checked every 100,000 operations.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmarks/soak.py --ops "${SOAK_OPS:-500000}" --seed "${SOAK_SEED:-1}"
