"""Observability implemented once: TableObserver answers count, slots_in, occupancy and the
transition statistics for any table arrays (MachineTable's own, or a shared-memory reader's)."""

from __future__ import annotations

import numpy as np
import pytest

from streamhsm import FREE_SLOT, Event, LeaseState, State, StreamTable
from streamhsm._observe import TableObserver

E, S = Event, State


def _busy_table() -> StreamTable:
    rng = np.random.default_rng(5)
    t = StreamTable(300)
    for _ in range(250):
        t.open()
    t.dispatch_many(rng.integers(0, 250, 5000), rng.integers(0, len(Event), 5000).astype(np.uint8))
    for s in (3, 7, 11):
        t.release(s)
    return t


def test_observer_on_copied_arrays_agrees_with_the_table() -> None:
    t = _busy_table()
    counts = np.bincount(t.states, minlength=FREE_SLOT + 1).astype(np.int64)
    obs = TableObserver(t.machine, t.states.copy(), counts, t.transition_counts.copy())
    for s in S:
        assert obs.count(s) == t.count(s)
        assert obs.slots_in(s).tolist() == t.slots_in(s).tolist()
    stats = t.stats()
    assert stats["occupancy"] == obs.occupancy()
    assert stats["transitions"] == obs.transition_counts() and stats["transitions"]
    assert obs.summary() == {"occupancy": stats["occupancy"], "transitions": stats["transitions"]}
    assert stats["occupancy"]["Root"] == len(t) == stats["open"]


def test_observer_uses_the_machine_codec() -> None:
    t = _busy_table()
    counts = np.bincount(t.states, minlength=FREE_SLOT + 1).astype(np.int64)
    obs = TableObserver(t.machine, t.states, counts, t.transition_counts)
    assert obs.count("Live") == obs.count(S.LIVE) == obs.count(1) == obs.count(np.uint8(1))
    with pytest.raises(TypeError, match="belongs to Event"):
        obs.count(E.CLOSE)
    with pytest.raises(TypeError, match="belongs to LeaseState"):
        obs.slots_in(LeaseState.ACTIVE)
    with pytest.raises(ValueError, match="unknown state code 6"):
        obs.count(6)
