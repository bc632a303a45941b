"""Build the Cython extension(s); all metadata lives in pyproject.toml.

Unsafe Cython directives are chosen here, once, for the whole build. ``STREAMHSM_CYTHON_DEBUG=1``
turns bounds checks, wraparound and initialisation checks back on and compiles the kernel's own
index checks in (``STREAMHSM_DEBUG_CHECKS``), so a bad index raises instead of corrupting memory.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("STREAMHSM_CYTHON_DEBUG", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "auto_pickle": False,  # nothing here is pickled (see docs/reliability.md)
}
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    macros.append(("STREAMHSM_DEBUG_CHECKS", "1"))

# The compiled modules, by dotted name; the source is the matching .pyx under src/.
MODULES = ("streamhsm._engine", "streamhsm.driver._idmap", "streamhsm.driver._core",
           "streamhsm.tools._floor")

extensions = [
    Extension(
        name,
        ["src/" + name.replace(".", "/") + ".pyx"],
        define_macros=macros,
        include_dirs=["src/streamhsm"],  # _simd.h (run-time dispatched SIMD kernels, no -march)
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        build_dir="build/cython",
        annotate=os.environ.get("STREAMHSM_CYTHON_ANNOTATE", "") not in ("", "0"),
    ),
)
