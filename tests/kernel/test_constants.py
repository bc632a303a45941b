"""Engine constants have one source: the free-slot code is written once, in ``_kernel.pxd``; the
pure-Python layers derive their own copy (``streamhsm.machine.FREE_SLOT``) and a test holds the
two equal."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import streamhsm
from streamhsm import FREE_SLOT, StreamTable
from streamhsm.machine import MAX_EVENTS, MAX_STATES

ENGINE_FILES = ("_kernel.pxd", "_batch.pxd", "_checks.pxd", "_table.pyx", "_table.pxd",
                "_table.pyi", "_instance.pyx", "_instance.pyi", "_testing.pyx", "_codec.py",
                "_limits.py", "_views.py", "_observe.py", "compiler.py", "machine.py", "reference.py",
                "lifecycle.py", "errors.py")


def test_free_slot_value_is_written_once_in_the_engine() -> None:
    root = Path(streamhsm.__file__).parent
    hits = []
    for name in ENGINE_FILES:
        path = root / name
        if not path.exists():  # an installed wheel may not ship the sources
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"(?<![\w.])(255|256|0xff|0xFF)(?![\w.])", line):
                hits.append(f"{name}:{no}: {line.strip()}")
    assert [h.split(": ", 1)[1] for h in hits] == ["HSM_FREE_SLOT = 255"], hits


def test_the_python_free_slot_code_equals_the_kernels() -> None:
    from streamhsm import _table, compiler, machine

    assert machine.FREE_SLOT == _table.FREE_SLOT == streamhsm.FREE_SLOT
    assert compiler.CODE_ROWS == _table.FREE_SLOT + 1


def test_constants_derive_from_the_free_slot_code() -> None:
    assert FREE_SLOT == np.iinfo(np.uint8).max
    assert MAX_STATES == FREE_SLOT and MAX_EVENTS == FREE_SLOT
    t = StreamTable(2)
    assert (t.states == FREE_SLOT).all()


def test_engine_tables_are_named_read_only_and_cached() -> None:
    from streamhsm import State, stream_machine

    m = stream_machine()
    tables = m.engine_tables
    assert tables is m.engine_tables
    assert tables.next_state.shape == (FREE_SLOT + 1, m.n_events)
    assert (tables.next_state[FREE_SLOT] == FREE_SLOT).all() and not tables.kind[FREE_SLOT].any()
    assert (tables.next_state[:m.n_states] == m.next_state).all()
    assert tables.member[State.LIVE, State.ACTIVE] and not tables.member[State.LIVE, State.CLOSED]
    for arr in (tables.next_state, tables.handled, tables.unhandled, tables.kind, tables.member,
                m.next_state, m.handled, m.handler, m.parent):
        try:
            arr.flags.writeable = True
        except ValueError:
            continue
        raise AssertionError("an engine table can be made writeable")


def test_the_int32_limit_is_written_once() -> None:
    """``2**31 - 1`` (capacities, slot indices, stream ids) is defined once, in ``_limits.py``;
    every other module uses ``MAX_CAPACITY`` / ``INT32_MAX`` (docstrings may quote the value)."""
    from streamhsm._limits import INT32_MAX, MAX_CAPACITY
    from streamhsm.driver.config import MAX_STREAM_ID

    assert MAX_CAPACITY == INT32_MAX == MAX_STREAM_ID == np.iinfo(np.int32).max
    root = Path(streamhsm.__file__).parent
    hits = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".py", ".pyx", ".pxd"):
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"2\s*\*\*\s*31|2147483647", code) and "``" not in code:
                hits.append(f"{path.relative_to(root)}:{no}: {line.strip()}")
    assert hits == ["_limits.py:14: INT32_MAX = 2**31 - 1"], hits
