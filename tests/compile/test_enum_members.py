"""States read back as the right member (issue 19, class 4): enums are mapped by value
everywhere, so an ``IntEnum`` may declare its members in any order; names that an enum reserves
(``__init__``, ``_x``) or two names of one member are refused at compile(). The reference
interpreter refuses a parent cycle as compile() does (class 7)."""

from __future__ import annotations

import enum

import pytest

from streamhsm import (
    MachineDefinitionError,
    MachineInstance,
    MachineSpec,
    MachineTable,
    ReferenceMachine,
)


class Door(enum.IntEnum):
    """Members not in code order."""

    AJAR = 2
    ROOT = 0
    IDLE = 1


class Ev(enum.IntEnum):
    OPEN = 0
    CLOSE = 1


def _spec() -> MachineSpec:
    spec = MachineSpec("door", Ev, initial="Idle")
    spec.state("Idle").state("Ajar")
    spec.on("Idle", "Open", "Ajar").on("Ajar", "Close", "Idle")
    return spec


def test_members_in_any_order_read_back_by_value() -> None:
    m = _spec().compile(Door, Ev)
    assert m.state_members == (Door.ROOT, Door.IDLE, Door.AJAR)
    t = MachineTable(m, 2)
    s = t.open()
    assert t.state(s) is Door.IDLE
    t.dispatch(s, Ev.OPEN)
    assert t.state(s) is Door.AJAR
    i = MachineInstance(m)
    assert i.current is Door.IDLE
    i.dispatch(Ev.OPEN)
    assert i.current is Door.AJAR


@pytest.mark.parametrize(("name", "match"), [
    ("__init__", "state name '__init__' starts with an underscore"),
    ("_Hidden", "state name '_Hidden' starts with an underscore"),
])
def test_names_an_enum_reserves_are_refused(name: str, match: str) -> None:
    spec = MachineSpec("m", ["Go"], initial="A")
    spec.state("A").state(name)
    spec.on("A", "Go", name).on(name, "Go", "A")
    with pytest.raises(MachineDefinitionError, match=match):
        spec.compile()


def test_two_names_of_one_member_are_refused() -> None:
    spec = MachineSpec("m", ["Go"], initial="FooBar")
    spec.state("FooBar").state("Foo_bar")
    spec.on("FooBar", "Go", "Foo_bar").on("Foo_bar", "Go", "FooBar")
    with pytest.raises(MachineDefinitionError,
                       match="'FooBar' and 'Foo_bar' both become the enum member 'FOO_BAR'"):
        spec.compile()


def test_an_event_named_like_a_dunder_is_refused() -> None:
    spec = MachineSpec("m", ["Go", "__call__"], initial="A")
    spec.state("A")
    spec.on("A", "Go")
    with pytest.raises(MachineDefinitionError, match="event name '__call__'"):
        spec.compile()


def test_the_reference_refuses_a_parent_cycle_like_compile() -> None:
    spec = MachineSpec("loop", ["Go"], initial="A")
    spec.state("A", parent="B").state("B", parent="A")
    spec.on("A", "Go")
    with pytest.raises(MachineDefinitionError, match="cycle in state parents: A -> B -> A") as c:
        spec.compile()
    with pytest.raises(MachineDefinitionError) as r:
        ReferenceMachine(spec)
    assert str(r.value) == str(c.value)
