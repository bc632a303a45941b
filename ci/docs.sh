#!/usr/bin/env bash
# Build the documentation site into build/docs/html with Sphinx, warnings as errors (a broken
# reference or a missing docstring fails). The package must be importable by the current python
# (CI installs it first; otherwise this installs ".[docs]"). Installs the `docs` extra's
# requirements (ci/install-requirements.sh) and Graphviz `dot` (apt-get) when they are missing.
# The API reference, the state diagrams and the scaling plot are generated during the build.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
if ! python -c "import streamhsm._table" 2>/dev/null; then
    python -m pip install --quiet ".[docs]"
fi
bash ci/install-requirements.sh docs
if ! command -v dot >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
    else
        echo "error: the state diagrams need Graphviz 'dot' (Debian: apt-get install graphviz)" >&2
        exit 1
    fi
fi
rm -rf build/docs
python -m sphinx -b html -W --keep-going -E -q docs build/docs/html
echo "docs: build/docs/html/index.html built in $((SECONDS - start)) s"
