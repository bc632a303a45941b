"""Build the Cython extension(s); all metadata lives in pyproject.toml.

Unsafe Cython directives are chosen here, once, for the whole build. ``STREAMHSM_CYTHON_DEBUG=1``
turns bounds checks, wraparound and initialisation checks back on and compiles the kernel's own
index checks in (``STREAMHSM_DEBUG_CHECKS``), so a bad index raises instead of corrupting memory.

Release builds carry no debug info: Python's own CFLAGS (``sysconfig``) usually contain ``-g``,
which ``-g0`` after it cancels (otherwise about 7 MB of DWARF in the modules, and a quarter
of the compile time). Cythonizing and compiling run one job per available CPU, also under
``pip install .``; ``STREAMHSM_BUILD_JOBS=N`` overrides that (as does ``build_ext -j N``).

The modules use no numpy C API (typed memoryviews only): no numpy include directory is needed.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup


def _jobs() -> int:
    """Parallel build jobs: STREAMHSM_BUILD_JOBS, else the CPUs this process may run on."""
    env = os.environ.get("STREAMHSM_BUILD_JOBS", "")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"STREAMHSM_BUILD_JOBS={env!r} is not a positive integer")
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


JOBS = _jobs()
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
macros = []
if DEBUG:
    macros.append(("STREAMHSM_DEBUG_CHECKS", "1"))

# The compiled modules, by dotted name; the source is the matching .pyx under src/.
MODULES = ("streamhsm._table", "streamhsm._instance", "streamhsm._testing",
           "streamhsm.driver._idmap", "streamhsm.driver._core", "streamhsm.driver._calls",
           "streamhsm.tools._floor")

extensions = [
    Extension(
        name,
        ["src/" + name.replace(".", "/") + ".pyx"],
        define_macros=macros,
        include_dirs=["src/streamhsm"],  # _simd.h (run-time dispatched SIMD kernels, no -march)
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3", "-g0"],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        # apart, so switching STREAMHSM_CYTHON_DEBUG never reuses C generated with the other
        # directives (cythonize only compares timestamps)
        build_dir="build/cython-debug" if DEBUG else "build/cython",
        nthreads=JOBS if JOBS > 1 else 0,
        annotate=os.environ.get("STREAMHSM_CYTHON_ANNOTATE", "") not in ("", "0"),
    ),
    # `-j` for build_ext, also when the build runs through pip / python -m build (PEP 517)
    options={"build_ext": {"parallel": JOBS}},
)
