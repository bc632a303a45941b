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
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, streamhsm.StreamHsmError):
                found.add(obj.__name__)
    assert found >= {"SnapshotError", "SharedTableError", "TableFullError",
                     "MachineDefinitionError"}
    assert sorted(found - set(streamhsm.__all__)) == []


# The engine's own layers, lowest first: a module imports (at module level, outside
# ``if TYPE_CHECKING``) only modules of lower layers, except within the top one (the Python API,
# whose public modules build on each other). The declaration's ``MachineSpec.compile`` calls the
# compiler at call time (an import inside the method), the one call up.
ENGINE_LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("base", frozenset({"errors", "codes", "_files", "_views", "_limits", "_trace",
                        "_refusals", "_pids"})),
    ("owned copies", frozenset({"_owned"})),
    ("declaration", frozenset({"machine", "_codec"})),
    ("reference parts", frozenset({"_reference_timers"})),
    ("compiler parts", frozenset({"_pseudo", "_engine_tables"})),
    ("timer tables", frozenset({"_timer_tables"})),  # reads the engine tables' layout
    ("compiler", frozenset({"compiler", "reference", "snapshot", "_observe"})),
    ("kernels", frozenset({"_kernel", "_checks"})),
    ("timer kernels", frozenset({"_timer_kernel"})),  # built on the kernels' structs
    ("batch kernels", frozenset({"_batch"})),
    ("core binding", frozenset({"_binding"})),
    ("table and instance classes", frozenset({"_table", "_instance"})),
    ("Python API", frozenset({"_testing", "capi", "registry", "lifecycle", "shm", "_shm_timers",
                              "__init__", "__main__"})),
)
_RANK = {name: i for i, (_, names) in enumerate(ENGINE_LAYERS) for name in names}
ENGINE_SOURCES = sorted(p for p in SOURCES if p.parent == PKG)


def _module_level_engine_imports(path: Path) -> set[str]:
    """The engine modules ``path`` imports at module level (not in a function, not only for
    type checking); ``.pyx``/``.pxd`` files by their unindented (c)import lines."""
    import ast

    text = path.read_text(encoding="utf-8")
    mods: list[str] = []
    if path.suffix in (".py", ".pyi"):
        def walk(body: list[ast.stmt]) -> None:
            for node in body:
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    continue
                if isinstance(node, ast.ImportFrom):
                    mods.append("." * node.level + (node.module or ""))
                    if node.level and not node.module:  # from . import x
                        mods.extend("." + a.name for a in node.names)
                elif isinstance(node, ast.Import):
                    mods.extend(a.name for a in node.names)
                elif isinstance(node, (ast.If, ast.Try)):
                    walk(node.body)
                    walk(getattr(node, "orelse", []))
        walk(ast.parse(text).body)
    else:
        mods = [m.group(1) or m.group(2) for m in re.finditer(
            r"^(?:from\s+([.\w]+)\s+c?import|c?import\s+([.\w]+))", text, re.M)]
    out = set()
    for mod in mods:
        if mod.startswith(".") and not mod.startswith(".."):
            name = mod[1:].split(".")[0]
        elif mod.startswith("streamhsm."):
            name = mod.split(".")[1]
        else:
            continue
        if name and name not in ("driver", "tools"):
            out.add(name)
    return out


def test_every_engine_module_has_a_layer() -> None:
    missing = sorted({p.stem for p in ENGINE_SOURCES} - set(_RANK))
    assert not missing, f"engine modules without a layer in ENGINE_LAYERS: {missing}"


@pytest.mark.parametrize("path", ENGINE_SOURCES, ids=lambda p: p.name)
def test_engine_layers_point_down(path: Path) -> None:
    own = _RANK[path.stem]
    top = len(ENGINE_LAYERS) - 1
    for name in sorted(_module_level_engine_imports(path) - {path.stem}):
        assert name in _RANK, f"{path.name} imports {name}, which has no layer"
        ok = _RANK[name] < own or (own == top and _RANK[name] == top)
        assert ok, (f"{path.name} ({ENGINE_LAYERS[own][0]}) imports {name} "
                    f"({ENGINE_LAYERS[_RANK[name]][0]}): layers point down only")


def test_the_reference_imports_only_the_declaration() -> None:
    """The oracle shares nothing with the compiler: the declaration and its own parts."""
    allowed = frozenset().union(*(names for layer, names in ENGINE_LAYERS
                                  if layer in ("declaration", "reference parts")))
    assert _module_level_engine_imports(PKG / "reference.py") <= allowed


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "compiler.py"
    bad.write_text("from ._table import MachineTable\nfrom .machine import ROOT\n"
                   "def f():\n    from ._instance import MachineInstance\n")
    assert _module_level_engine_imports(bad) == {"_table", "machine"}


@pytest.mark.parametrize("path", sorted(p for p in SOURCES if p.suffix in (".pyx", ".pxd")
                                        and p.parent != PKG), ids=lambda p: p.name)
def test_compiled_code_outside_the_engine_cimports_only_the_c_api(path: Path) -> None:
    """The driver and tools use the engine's C level through ``capi.pxd`` alone."""
    text = path.read_text(encoding="utf-8")
    engine = {m for m in re.findall(r"^\s*from\s+streamhsm\.(\w+)\s+cimport", text, re.M)
              if m not in ("driver", "tools")}
    assert engine <= {"capi"}, f"{path.name} cimports streamhsm.{sorted(engine - {'capi'})}"
