"""Compile ``stream_driver.pyx`` against the installed streamhsm and import it.

    python examples/cython_driver/build.py       # builds in a temporary folder and runs a check

``build(dest)`` is also what the test and the benchmark use. It needs Cython and a C compiler;
when the build fails, the compiler's whole output is shown (``BuildError``; the script prints it
and exits with status 1).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent

SETUP = """
from Cython.Build import cythonize
from setuptools import Extension, setup
setup(ext_modules=cythonize([Extension("stream_driver", ["stream_driver.pyx"],
                                       extra_compile_args=["-O3"])],
                            compiler_directives={"boundscheck": False, "wraparound": False}))
"""


class BuildError(RuntimeError):
    """Compiling the example failed; the message holds the command's whole output."""


def build(dest: Path) -> ModuleType:
    """Copy the example into ``dest``, compile it in place and import it.

    Raises:
        BuildError: the compiler (or Cython) failed; its output is in the message.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "stream_driver.pyx", dest / "stream_driver.pyx")
    (dest / "setup.py").write_text(SETUP)
    cmd = [sys.executable, "setup.py", "build_ext", "--inplace", "-q"]
    proc = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip() or "(no output)"
        hint = ""
        if "No module named 'Cython'" in output:
            hint = "\nCython is missing: python -m pip install cython"
        raise BuildError(f"building the Cython example failed (exit status {proc.returncode}) "
                         f"in {dest}: {' '.join(cmd)}\n{output}{hint}")
    built = next(dest.glob("stream_driver*.so"), None) or next(dest.glob("stream_driver*.pyd"))
    spec = importlib.util.spec_from_file_location("stream_driver", built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    import tempfile

    import numpy as np

    from streamhsm import Event, StreamTable

    with tempfile.TemporaryDirectory() as tmp:
        try:
            driver = build(Path(tmp))
        except BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)
        table = StreamTable(4)
        for _ in range(4):
            table.open()
        handled = driver.drive(table, np.arange(4, dtype=np.int64),
                               np.full(4, Event.STREAM_PROVISIONED, np.uint8))
        print(f"handled {handled} events from Cython; states: {table.states.tolist()}")
