"""Cython's utility code is compiled once, as ``streamhsm._cyutility``, for every compiled module.

setup.py builds it as a shared extension module (Cython's ``shared_utility_qualified_name``):
without it each module carries its own copy of the memoryview code, about 4.7 s of compile time
each (docs/performance.md, build time). Checked on the installed package: the module is there,
and each other compiled module, imported alone in a fresh interpreter, imports it.
"""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
from pathlib import Path

import pytest

import streamhsm

PKG = Path(streamhsm.__file__).parent
SHARED = "streamhsm._cyutility"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent)
    stem = rel.name.split(".", 1)[0]
    return ".".join((*rel.parts[:-1], stem))


COMPILED = sorted(
    _module_name(p) for p in PKG.rglob("*")
    if any(p.name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)
)


def test_shared_utility_module_is_compiled() -> None:
    assert SHARED in COMPILED, COMPILED
    assert len(COMPILED) > 1, COMPILED


@pytest.mark.parametrize("name", [n for n in COMPILED if n != SHARED])
def test_module_uses_shared_utility_module(name: str) -> None:
    code = f"import sys, {name}; print({SHARED!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", f"{name} carries its own utility code"
