#!/usr/bin/env bash
# Install the requirements pyproject.toml declares, without the package itself (nothing to
# build), into the current python: its dependencies and each named extra's list.
#
#   ci/install-requirements.sh test        # numpy, pytest, mypy, ruff, ... (CI's first step)
#   ci/install-requirements.sh docs        # Sphinx and friends
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t reqs < <(python - "$@" <<'PY'
import sys
try:
    import tomllib
except ImportError:  # Python 3.10
    import pip._vendor.tomli as tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
extras = project["optional-dependencies"]
print("\n".join(project["dependencies"] + [r for name in sys.argv[1:] for r in extras[name]]))
PY
)
echo "== installing the requirements of ${*:-the package} (${#reqs[@]}): ${reqs[*]}"
python -m pip install --quiet "${reqs[@]}"
