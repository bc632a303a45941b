"""The C-level API: a Cython module compiled against the installed package's ``.pxd`` drives a
table with no Python call per event (the numpy ``test_extending`` pattern)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from streamhsm import Event, State, StreamTable


@pytest.mark.smoke
def test_cython_consumer_matches_python_dispatch(cython_driver: ModuleType) -> None:
    rng = np.random.default_rng(5)
    a, b = StreamTable(32), StreamTable(32)
    for _ in range(32):
        a.open(), b.open()
    slots = rng.integers(0, 32, 2000)
    events = rng.integers(0, len(Event), 2000).astype(np.uint8)
    handled = cython_driver.drive(a, slots, events)
    assert handled == b.dispatch_many(slots, events)
    assert (a.states == b.states).all() and (a.unhandled == b.unhandled).all()
    assert a.unhandled_total == b.unhandled_total
    for s in State:
        assert a.count(s) == b.count(s)


def test_cython_consumer_validates_at_its_boundary(cython_driver: ModuleType) -> None:
    t = StreamTable(4)
    t.open()
    with pytest.raises(IndexError, match=r"slots\[1\] = 2 is not an open slot"):
        cython_driver.drive(t, np.array([0, 2], np.int64), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"events\[0\] = 10 is not an event code"):
        cython_driver.drive(t, np.array([0], np.int64), np.array([10], np.uint8))
    assert t.state(0) is State.INIT and t.unhandled_total == 0


def test_repeat_one(cython_driver: ModuleType) -> None:
    t = StreamTable(2)
    s = t.open()
    t.dispatch(s, Event.STREAM_PROVISIONED)
    assert cython_driver.repeat_one(t, s, int(Event.EPOCH_BUMPED), 1000) == 1000
    assert cython_driver.repeat_one(t, s, int(Event.STREAM_PROVISIONED), 10) == 0
    assert t.unhandled[s] == 10
    with pytest.raises(IndexError, match="slot 1 is not open"):
        cython_driver.repeat_one(t, 1, 0, 1)


@pytest.mark.parametrize("timers", [False, True])
def test_step_each_matches_dispatch_one_slot_at_a_time(cython_driver: ModuleType,
                                                       timers: bool) -> None:
    """``hsm_step_each`` (capi.pxd) does what ``hsm_step`` slot by slot does, on a machine with
    timers (its own loop: each step restarts or cancels the slot's timer at the table's clock)
    and without; repeated slots step again, in order."""
    from streamhsm import MachineSpec, MachineTable

    spec = MachineSpec("capi_each" + "_t" * timers, ["Ping", "Stop", "Expire"], initial="Live")
    spec.state("Live").state("Idle").on("Live", "Ping", restart="ttl" if timers else None)
    spec.on("Live", "Stop", "Idle").on("Live", "Expire", "Idle")
    if timers:
        spec.after("Live", 1_000, "Expire", name="ttl")
    m = spec.compile()
    a, b = MachineTable(m, 64), MachineTable(m, 64)
    for t in (a, b):
        for _ in range(64):
            t.open()
        if timers:
            t.advance(500)
        t.dispatch(3, "Stop")
    rng = np.random.default_rng(8)
    slots = rng.integers(0, 64, 300).astype(np.intp)
    for event in ("Ping", "Stop"):
        handled = cython_driver.step_each(a, slots, m.event_code(event))
        assert handled == sum(b.dispatch(int(s), event) for s in slots)
        assert (a.states == b.states).all() and (a.unhandled == b.unhandled).all()
        assert a.unhandled_total == b.unhandled_total
        assert [a.count(s) for s in ("Live", "Idle")] == [b.count(s) for s in ("Live", "Idle")]
        if timers:
            assert (a.deadlines("ttl") == b.deadlines("ttl")).all()
    with pytest.raises(IndexError, match=r"slots\[0\] = 99 is not an open slot"):
        cython_driver.step_each(a, np.array([99], np.intp), 0)


def test_flags_set_through_the_c_api_keep_the_packed_copy_in_step(
        cython_driver: ModuleType) -> None:
    """``hsm_set_flags`` (capi.pxd) writes both flag copies: a batch (which reads the packed
    copy) then does what the Python-level ``set_flag`` path does."""
    from streamhsm import MachineSpec, MachineTable

    spec = MachineSpec("capi_flags", ["Go", "Back"], initial="A").state("A").state("B")
    spec.flag("f").flag("g").on("A", "Go", "B", guard="f").on("B", "Back", "A", guard="!g")
    m = spec.compile()
    a, b = MachineTable(m, 5000), MachineTable(m, 5000)
    rng = np.random.default_rng(7)
    masks = rng.integers(0, 4, 5000)
    for s, mask in enumerate(masks):
        a.open(), b.open()
        cython_driver.set_flags(a, s, int(mask))
        b.set_flag(s, "f", bool(mask & 1))
        b.set_flag(s, "g", bool(mask & 2))
    assert (a.flags == b.flags).all()
    slots = rng.integers(0, 5000, 20_000)
    events = rng.integers(0, 2, 20_000).astype(np.uint8)
    assert a.dispatch_many(slots, events) == b.dispatch_many(slots, events)
    assert (a.states == b.states).all()
    with pytest.raises(ValueError, match="mask 4 has a bit beyond"):
        cython_driver.set_flags(a, 0, 4)
    a.release(1)
    with pytest.raises(ValueError, match="slot 1 is not open"):
        cython_driver.set_flags(a, 1, 1)
    with pytest.raises(ValueError, match="slot 5000 is not open"):
        cython_driver.set_flags(a, 5000, 1)
    assert (a.flags[:1] == b.flags[:1]).all() and a.flags[1] == 0


def test_the_c_api_exposes_no_engine_internals() -> None:
    """capi.pxd names the small contract only: no HsmCore, tables, scratch or trace pointers."""
    import streamhsm

    text = (Path(streamhsm.__file__).parent / "capi.pxd").read_text(encoding="utf-8")
    code = "\n".join(line.split("#")[0] for line in text.splitlines())
    for private in ("HsmCore", "HsmTrace", "next_state", "fpacked", "local", "trace", "kind",
                    "_batch", "tcells"):
        assert private not in code, private
