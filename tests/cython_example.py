"""The Cython example (``examples/cython_driver``) built once per test session.

A pytest plugin giving the session fixture ``cython_driver``: the example compiled into a
temporary folder the first time a test asks for it, then the same imported module for every test
and benchmark after (compiling it takes several seconds). ``tests/conftest.py`` and
``benchmarks/conftest.py`` both call :func:`register` (through ``runpy``, as neither folder is
an importable package); the first registration wins, so running either folder alone or both
together builds the example once.
"""

from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path
from types import ModuleType

import pytest

#: the example's build script (``build(dest)`` compiles and imports ``stream_driver``)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cython_driver" / "build.py"
#: the name this module is registered under in pytest's plugin manager
PLUGIN_NAME = "streamhsm-cython-example"


@pytest.fixture(scope="session")
def cython_driver(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The example's ``stream_driver`` module, compiled against the installed package."""
    build = runpy.run_path(str(EXAMPLE))["build"]
    return build(tmp_path_factory.mktemp("cython_driver"))  # type: ignore[no-any-return]


def register(config: pytest.Config) -> None:
    """Register this file, imported as a module, as a pytest plugin (once per session)."""
    if config.pluginmanager.has_plugin(PLUGIN_NAME):
        return
    spec = importlib.util.spec_from_file_location("streamhsm_tests_cython_example", __file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config.pluginmanager.register(module, PLUGIN_NAME)
