"""The package layout shows the architecture: engine <- driver <- tools.

The engine (the flat modules of ``streamhsm``) imports nothing from ``streamhsm.driver`` or
``streamhsm.tools``; the driver imports nothing from the tools. Checked on the installed sources
(``.py`` and ``.pyx`` ship in the wheel).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import streamhsm

PKG = Path(streamhsm.__file__).parent
# absolute (streamhsm.x) and relative (.x, ..x) imports and cimports
_IMPORT = re.compile(r"^\s*(?:from\s+([.\w]+)\s+c?import|c?import\s+([.\w]+))", re.M)


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else "engine"


def _targets(path: Path) -> set[str]:
    """Layers imported by a source file."""
    out = set()
    for m in _IMPORT.finditer(path.read_text(encoding="utf-8")):
        mod = m.group(1) or m.group(2)
        if mod.startswith("."):
            dots = len(mod) - len(mod.lstrip("."))
            here = list(path.relative_to(PKG).parts[:-1])
            base = here[: len(here) - (dots - 1)] if dots > 1 else here
            parts = base + [p for p in mod.lstrip(".").split(".") if p]
        elif mod == "streamhsm" or mod.startswith("streamhsm."):
            parts = mod.split(".")[1:]
        else:
            continue
        out.add(parts[0] if parts and parts[0] in ("driver", "tools") else "engine")
    return out


SOURCES = sorted(p for p in PKG.rglob("*") if p.suffix in (".py", ".pyx", ".pxd", ".pyi"))
FORBIDDEN = {"engine": {"driver", "tools"}, "driver": {"tools"}, "tools": set()}


def test_sources_found() -> None:
    layers = {_layer(p) for p in SOURCES}
    assert layers == {"engine", "driver", "tools"}, layers


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PKG)))
def test_layer_direction(path: Path) -> None:
    if path.name == "__init__.py" and path.parent == PKG:
        # the package root re-exports the public names of every layer
        return
    if path.name == "__main__.py" and path.parent == PKG:
        return  # ``python -m streamhsm`` is the tools' entry point
    bad = _targets(path) & FORBIDDEN[_layer(path)]
    assert not bad, f"{path.relative_to(PKG)} ({_layer(path)}) imports from {sorted(bad)}"


def test_every_error_class_is_exported() -> None:
    """Every streamhsm error a public method can raise is importable from ``streamhsm``."""
    import importlib
    import inspect
    import pkgutil

    found = set()
    for info in pkgutil.walk_packages(streamhsm.__path__, "streamhsm."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ModuleNotFoundError as exc:  # a tool needing an optional package (miros)
            if (exc.name or "").startswith("streamhsm"):
                raise
            continue
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, streamhsm.StreamHsmError):
                found.add(obj.__name__)
    assert found >= {"SnapshotError", "SharedTableError", "TableFullError", "MachineDefinitionError"}
    assert sorted(found - set(streamhsm.__all__)) == []
