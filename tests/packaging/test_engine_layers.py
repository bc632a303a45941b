"""The engine's layers as the code promises them: an immutable compiled machine (nothing is
written onto it after compile, so the engine's pointers and sizes bound from it stay valid) and a
reference interpreter that needs nothing compiled."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from streamhsm import MachineTable, stream_machine
from streamhsm.compiler import CompiledMachine, EngineTables
from streamhsm.machine import MachineSpec


def _flagged() -> CompiledMachine:
    spec = MachineSpec("m", ["Go", "Stop"], initial="A").state("A").state("B").flag("f")
    spec.on("A", "Go", "B", guard="f").on("B", "Stop", "A")
    return spec.compile()


MACHINES = [stream_machine, _flagged]


def _public_attributes(obj: object) -> list[str]:
    return sorted(vars(obj)) if hasattr(obj, "__dict__") else sorted(
        s for cls in type(obj).__mro__ for s in getattr(cls, "__slots__", ()))


@pytest.mark.parametrize("make", MACHINES, ids=["stream", "flagged"])
def test_every_attribute_of_a_compiled_machine_is_read_only(make) -> None:
    m = make()
    for obj in (m, m.engine_tables, m.codec):
        names = _public_attributes(obj)
        assert len(names) >= 5, names
        for name in names:
            before = getattr(obj, name)
            with pytest.raises(AttributeError, match="immutable"):
                setattr(obj, name, before)
            with pytest.raises(AttributeError, match="immutable"):
                delattr(obj, name)
            assert getattr(obj, name) is before
        with pytest.raises(AttributeError, match="immutable"):
            obj.new_attribute = 1  # type: ignore[union-attr]


@pytest.mark.parametrize("make", MACHINES, ids=["stream", "flagged"])
def test_every_array_of_a_compiled_machine_is_read_only(make) -> None:
    m = make()
    arrays = [(f"machine.{k}", v) for k, v in vars(m).items() if isinstance(v, np.ndarray)]
    arrays += [(f"engine_tables.{k}", getattr(m.engine_tables, k))
               for k in _public_attributes(m.engine_tables)
               if isinstance(getattr(m.engine_tables, k), np.ndarray)]
    assert len(arrays) >= 16, [k for k, _ in arrays]
    for name, arr in arrays:
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError):
            arr.flags.writeable = True
        with pytest.raises(ValueError):
            arr.reshape(-1)[:1] = 0


def test_resizing_a_machine_under_a_table_is_refused() -> None:
    """Issue 19 item 6: ``m.n_events = 255`` after a table was built made dispatch_many index
    past the machine's tables. Now the assignment raises and the table runs unchanged."""
    m = stream_machine()
    t = MachineTable(m, 4)
    with pytest.raises(AttributeError, match="immutable: cannot set 'n_events'"):
        m.n_events = 255  # type: ignore[misc]
    assert m.n_events == len(m.event_names)
    s = t.open()
    with pytest.raises(ValueError, match="unknown event code 200"):
        t.dispatch_many(np.array([s], np.int64), np.array([200], np.uint8))
    assert isinstance(m.engine_tables, EngineTables)


def test_the_reference_interpreter_imports_with_the_extensions_blocked() -> None:
    """The oracle shares no compiled code with what it checks: importing it (and running it)
    loads no extension module of streamhsm."""
    script = textwrap.dedent("""
        import importlib.abc, importlib.machinery, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if not name.startswith("streamhsm."):
                    return None
                spec = importlib.machinery.PathFinder.find_spec(name, path)
                if spec is not None and isinstance(spec.loader,
                                                   importlib.machinery.ExtensionFileLoader):
                    raise ImportError(f"blocked compiled module {name}")
                return None

        sys.meta_path.insert(0, Block())
        # the package root imports the compiled classes: load the modules without running it
        import types, importlib.util
        root = importlib.util.find_spec("streamhsm")
        pkg = types.ModuleType("streamhsm")
        pkg.__path__ = list(root.submodule_search_locations)
        sys.modules["streamhsm"] = pkg
        from streamhsm.reference import ReferenceMachine
        from streamhsm.machine import MachineSpec
        spec = MachineSpec("m", ["Go"], initial="A").state("A").state("B").on("A", "Go", "B")
        r = ReferenceMachine(spec)
        r.dispatch("Go")
        assert r.current == "B"
        try:
            import streamhsm._table
        except ImportError as exc:
            assert "blocked compiled module" in str(exc)
        else:
            raise AssertionError("the blocker let a compiled module through")
        compiled = [n for n, m in sys.modules.items() if n.startswith("streamhsm.")
                    and isinstance(getattr(m, "__loader__", None),
                                   importlib.machinery.ExtensionFileLoader)]
        assert not compiled, compiled
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd="/", check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_instances_share_their_machines_tables_without_keeping_dead_machines() -> None:
    """MachineInstance shares one machine-level object per machine (cached beside the engine,
    not on the immutable machine); once a machine's instances are gone and another machine was
    used since, nothing keeps it alive."""
    import gc
    import weakref

    from streamhsm import MachineInstance

    def machine(name: str) -> CompiledMachine:
        return MachineSpec(name, ["Go"], initial="A").state("A").state("B").on(
            "A", "Go", "B").compile()

    a = machine("a")
    first, second = MachineInstance(a), MachineInstance(a)
    assert first.dispatch("Go") and first.current == a.State.B and second.current == a.State.A
    dead = weakref.ref(a)
    del a, first, second
    MachineInstance(machine("b"))  # the engine's one-entry cache moves on
    gc.collect()
    assert dead() is None
