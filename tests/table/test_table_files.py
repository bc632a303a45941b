"""Every table kind has the same save/load pair (issue 19, rough edges): ``MachineTable.save`` /
``MachineTable.load(path, machine)`` like ``StreamTable``'s, sharing one implementation
(``streamhsm.snapshot.read_table_file``); loading reads regular files only; traces read as named
records."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from streamhsm import Event, MachineSpec, MachineTable, State, StreamTable, TraceRecord
from streamhsm.snapshot import SnapshotError


def _spec(initial: str = "Idle") -> MachineSpec:
    spec = MachineSpec("door", ["Open", "Close"], initial=initial)
    spec.state("Idle").state("Ajar")
    spec.on("Idle", "Open", "Ajar").on("Ajar", "Close", "Idle")
    return spec


def test_machine_table_round_trip(tmp_path: Path) -> None:
    m = _spec().compile()
    t = MachineTable(m, 5)
    for _ in range(4):
        t.open()
    t.dispatch_many(np.array([0, 1, 1, 2], np.int64), np.array([0, 0, 1, 1], np.uint8))
    t.release(3)
    t.save(tmp_path / "door.npz")
    u = MachineTable.load(tmp_path / "door.npz", m)
    assert type(u) is MachineTable and u.capacity == 5 and len(u) == 3
    assert u.states.tolist() == t.states.tolist()
    assert u.unhandled.tolist() == t.unhandled.tolist()
    assert u.transition_counts.tolist() == t.transition_counts.tolist()
    assert u.open() == t.open()  # the free-slot order too


def test_load_refuses_another_machine_before_allocating(tmp_path: Path) -> None:
    t = MachineTable(_spec().compile(), 3)
    t.save(tmp_path / "door.npz")
    other = _spec(initial="Ajar").compile()  # differs only in its initial state
    with pytest.raises(SnapshotError, match="not '" + other.fingerprint):
        MachineTable.load(tmp_path / "door.npz", other)
    with pytest.raises(TypeError, match="machine must be a CompiledMachine, got MachineSpec"):
        MachineTable.load(tmp_path / "door.npz", _spec())


def test_stream_table_shares_the_pair(tmp_path: Path) -> None:
    t = StreamTable(4, drain_on_producer_loss=True)
    t.open()
    t.save(tmp_path / "s.npz")
    u = StreamTable.load(tmp_path / "s.npz")
    assert u.drain_on_producer_loss and u.states.tolist() == t.states.tolist()
    v = StreamTable.load(tmp_path / "s.npz", t.machine)
    assert v.states.tolist() == t.states.tolist()
    with pytest.raises(SnapshotError, match="fingerprint"):
        StreamTable.load(tmp_path / "s.npz", StreamTable(1).machine)
    w = MachineTable.load(tmp_path / "s.npz", t.machine)  # the base pair reads it too
    assert type(w) is MachineTable and w.states.tolist() == t.states.tolist()


@pytest.mark.parametrize("kind", ["fifo", "dir", "dev"])
def test_machine_table_load_reads_regular_files_only(tmp_path: Path, kind: str) -> None:
    m = _spec().compile()
    if kind == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)  # a reader that blocked here would hang the test
    elif kind == "dir":
        path = str(tmp_path)
    else:
        path = "/dev/zero"  # a reader that read to the end would exhaust memory
    with pytest.raises(SnapshotError, match="not a regular file|is a directory|regular"):
        MachineTable.load(path, m)


def test_trace_records_are_named() -> None:
    t = StreamTable(4)
    t.enable_trace(8)
    s = t.open()
    t.dispatch(s, Event.STREAM_PROVISIONED)
    t.dispatch(s, Event.CLOSE)
    recs = t.trace_records()
    assert [type(r) for r in recs] == [TraceRecord, TraceRecord]
    first = recs[0]
    assert (first.slot, first.event, first.from_state, first.to_state) == (
        s, Event.STREAM_PROVISIONED, State.INIT, State.ACTIVE)
    assert first.handled_by is State.INIT and recs[1].handled_by is State.LIVE
    assert "from_state=<State.INIT" in repr(first)
    assert t.trace()["to_state"].tolist() == [int(State.ACTIVE), int(State.CLOSED)]
