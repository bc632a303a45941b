#!/usr/bin/env bash
# Lint (the first CI tier, seconds): ruff over every Python file (rules and line length in
# pyproject's [tool.ruff]), cython-lint over the Cython sources (line length in pyproject's
# [tool.cython-lint]). Installs both, at the minimum versions the `test` extra pins, when the
# current python lacks them. Fix findings with `ruff check --fix PATH` (never `ruff format`: the
# code is laid out by hand).
#
# LINT_NONFATAL=1 reports the findings and exits 0 (to time the later CI tiers on a tree that
# is not lint-clean yet); CI never sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts=$(python -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
if ! python -m ruff --version >/dev/null 2>&1 || [ ! -x "$scripts/cython-lint" ]; then
    # the pins of the `test` extra (one place): "ruff>=X", "cython-lint>=Y"
    mapfile -t reqs < <(python - <<'PY'
import re
text = open("pyproject.toml", encoding="utf-8").read()
for name in ("ruff", "cython-lint"):
    print(re.search(rf'"({name}>=[\d.]+)"', text).group(1))
PY
)
    echo "== lint: installing ${reqs[*]}"
    python -m pip install --quiet "${reqs[@]}"
fi
# cython-lint (a command, no `python -m`) runs pycodestyle as a command: both from beside python
PATH="$scripts:$PATH"
status=0
echo "== lint: $(python -m ruff --version) over the Python files"
python -m ruff check --no-cache --output-format concise . || status=1
mapfile -t cython_files < <(git ls-files 'src/*.pyx' 'src/*.pxd' 'examples/*.pyx' \
    'examples/*.pxd' 2>/dev/null || find src examples -name '*.pyx' -o -name '*.pxd')
echo "== lint: cython-lint $(cython-lint --version) over ${#cython_files[@]} Cython files"
cython-lint "${cython_files[@]}" || status=1
if [ $status = 0 ]; then
    echo "lint: clean in $((SECONDS - start)) s"
elif [ "${LINT_NONFATAL:-0}" = 1 ]; then
    echo "lint: findings above (in $((SECONDS - start)) s); LINT_NONFATAL=1: not failing"
    status=0
else
    echo "lint: findings above (in $((SECONDS - start)) s)"
fi
exit $status
