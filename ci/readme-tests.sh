#!/usr/bin/env bash
# The README's test command, verbatim: install the package with its test extra, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install ".[test]" && python -m pytest
