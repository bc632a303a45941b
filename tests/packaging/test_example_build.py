"""``examples/cython_driver/build.py`` shows the compiler's output when the build fails (it used to
capture it and raise a bare ``CalledProcessError``)."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke(False)  # not in the smoke suite: compiler builds

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cython_driver" / "build.py"


@pytest.fixture(name="no_cython_env")
def no_cython_env_fixture(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import Cython`` fails, as on a machine without Cython."""
    fake = tmp_path / "fake" / "Cython"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'Cython'\", name='Cython')\n")
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{fake.parent}{os.pathsep}{path}" if path
            else str(fake.parent)}


def test_script_prints_the_build_output_and_fails(no_cython_env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLE)], env=no_cython_env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: building the Cython example failed (exit status 1)")
    assert "from Cython.Build import cythonize" in proc.stderr  # the compiler's own traceback
    assert "ModuleNotFoundError: No module named 'Cython'" in proc.stderr
    assert "Cython is missing: python -m pip install cython" in proc.stderr
    assert "CalledProcessError" not in proc.stderr


def test_build_error_holds_the_compiler_output(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A C compiler failure: the message carries what the compiler printed."""
    module = runpy.run_path(str(EXAMPLE))
    monkeypatch.setenv("CC", "/bin/false")  # setuptools compiles with $CC
    with pytest.raises(module["BuildError"], match=r"(?s)exit status 1.*/bin/false"):
        module["build"](tmp_path / "build")
