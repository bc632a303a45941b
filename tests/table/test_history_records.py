"""Issue 20: history records in snapshots (format version 4) and restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhsm import MachineSpec, MachineTable
from streamhsm.machine import FREE_SLOT
from streamhsm.snapshot import SNAPSHOT_VERSION, SnapshotError, load_snapshot, save_snapshot


def _machine() -> Any:
    s = MachineSpec("resume", ["Next", "Maintain", "Resume"], "Live")
    s.state("Live", initial="Idle").state("Idle", "Live").state("Busy", "Live")
    s.state("Maintenance").on("Idle", "Next", "Busy").on("Busy", "Next", "Idle")
    s.on("Live", "Maintain", "Maintenance").on("Maintenance", "Resume", "Live", history="deep")
    return s.compile()


def _table() -> Any:
    m = _machine()
    t = MachineTable(m, 5)
    for _ in range(4):
        t.open()
    t.dispatch(1, "Next")
    t.dispatch(1, "Maintain")
    t.dispatch(2, "Maintain")
    t.release(3)
    return m, t


def _everything(t: Any) -> list[Any]:
    return [t.states.copy(), t.flags.copy(), t.unhandled.copy(), t.history("Live").copy(),
            t.transition_counts.copy(), len(t)]


def test_records_travel_with_snapshots_and_files(tmp_path: Path) -> None:
    m, t = _table()
    snap = t.snapshot()
    assert snap["version"] == SNAPSHOT_VERSION == 5
    assert snap["history"].tolist() == [FREE_SLOT, m.state_code("Busy"), m.state_code("Idle"),
                                        FREE_SLOT, FREE_SLOT]
    save_snapshot(snap, tmp_path / "t.npz")
    u = MachineTable(m, 5)
    u.restore(load_snapshot(tmp_path / "t.npz"))
    assert all(np.array_equal(a, b) for a, b in zip(_everything(t), _everything(u), strict=True))
    u.dispatch(1, "Resume")
    assert u.state(1) == m.State.BUSY  # the restored record is read


def test_a_version_3_snapshot_restores_with_no_records() -> None:
    m, t = _table()
    old = dict(t.snapshot(), version=3)
    del old["history"]
    u = MachineTable(m, 5)
    u.restore(old)
    assert (u.history("Live") == FREE_SLOT).all() and (u.states == t.states).all()
    u.dispatch(1, "Resume")
    assert u.state(1) == m.State.IDLE  # no record: the initial entry


@pytest.mark.parametrize(("edit", "match"), [
    (lambda h, m: h.__setitem__(0, m.state_code("Maintenance")),
     "history record 4 of 'Live' at slot 0 is not a non-final leaf below it"),
    (lambda h, m: h.__setitem__(1, m.state_code("Live")), "history record 1 of 'Live' at slot 1"),
    (lambda h, m: h.__setitem__(3, m.state_code("Idle")), "at slot 3 .* on an open slot"),
    (lambda h, m: h.__setitem__(4, 200), "history record 200 of 'Live' at slot 4"),
])
def test_bad_records_are_refused_and_change_nothing(edit: Any, match: str) -> None:
    m, t = _table()
    snap = t.snapshot()
    edit(snap["history"], m)
    before = _everything(t)
    with pytest.raises(SnapshotError, match=match):
        t.restore(snap)
    assert all(np.array_equal(a, b) for a, b in zip(before, _everything(t), strict=True))


def test_records_of_the_wrong_shape_or_dtype_are_refused() -> None:
    _, t = _table()
    for bad in (np.zeros(4, np.uint8), np.zeros(5, np.int64), None):
        snap = dict(t.snapshot(), history=bad)
        with pytest.raises(SnapshotError, match="'history' must be uint8 of shape \\(5,\\)"):
            t.restore(snap)
