#!/usr/bin/env bash
# Build a wheel with `python -m build --wheel`, install it into a fresh venv, run the tests on it.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet build
out=$(mktemp -d "${TMPDIR:-/tmp}/streamhsm-dist.XXXXXX")
trap 'rm -rf "$out"' EXIT
python -m build --wheel --outdir "$out" .
wheel=$(ls "$out"/streamhsm-*.whl)
python - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["streamhsm/py.typed", "streamhsm/_engine.pyi", "streamhsm/_engine.pxd"]
missing = [n for n in need if n not in names]
generated = [n for n in names if n.endswith(".c")]
if missing or generated:
    sys.exit(f"bad wheel: missing {missing}, generated C shipped {generated}")
print("wheel contents ok:", len(names), "files")
PY
bash ci/venv-tests.sh wheel "$wheel[test]"
