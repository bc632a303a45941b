"""The engine's counters saturate at 2**63-1 (issue 19, class 5; the driver's rule, docs/design.md
"Counters and limits"): transition counts and the unhandled total restored at the maximum stay
there through every dispatch path, and the table's own snapshot then restores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamhsm import Event, MachineTable, State, StreamTable, stream_spec

MAX = 2**63 - 1
INIT, PROV = int(State.INIT), int(Event.STREAM_PROVISIONED)
N_EVENTS = len(Event)


def _at_the_limit(t: MachineTable, n_open: int) -> None:
    """Open ``n_open`` slots (in Init) and restore every transition count and the unhandled
    total at the maximum."""
    for _ in range(n_open):
        t.open()
    snap = t.snapshot()
    snap["transitions"][:] = MAX
    snap["unhandled_total"] = MAX
    t.restore(snap)


def _flagged_stream() -> MachineTable:
    spec = stream_spec()
    spec.flag("hot")
    return MachineTable(spec.compile(State, Event), 64)


def _dispatch(t: MachineTable) -> None:
    t.dispatch(0, PROV)
    t.dispatch(0, Event.STREAM_PROVISIONED)  # Active: unhandled


def _batch(t: MachineTable) -> None:
    n = len(t)
    t.dispatch_many(np.arange(n, dtype=np.int64), np.full(n, PROV, np.uint8))
    t.dispatch_many(np.arange(n, dtype=np.int32), np.full(n, PROV, np.int32))  # unhandled


def _traced_batch(t: MachineTable) -> None:  # tracing runs the batch event by event
    t.enable_trace(4)
    _batch(t)


def _broadcast(t: MachineTable) -> None:
    t.broadcast(PROV)
    t.broadcast(PROV)  # every open slot Active: unhandled


PATHS: list[tuple[str, Callable[[MachineTable], None], Callable[[], MachineTable]]] = [
    ("dispatch", _dispatch, lambda: StreamTable(64)),
    ("dispatch_many", _batch, lambda: StreamTable(64)),
    ("dispatch_many traced", _traced_batch, lambda: StreamTable(64)),
    ("broadcast", _broadcast, lambda: StreamTable(64)),
    ("broadcast with flags", _broadcast, _flagged_stream),
    ("dispatch_many with flags", _batch, _flagged_stream),
]


@pytest.mark.parametrize(("name", "run", "make"), PATHS, ids=[p[0] for p in PATHS])
def test_counters_saturate_and_the_own_snapshot_restores(
        name: str, run: Callable[[MachineTable], None], make: Callable[[], Any]) -> None:
    t = make()
    _at_the_limit(t, 40)
    run(t)
    counts = t.transition_counts
    assert counts.min() >= 0, f"{name}: a transition count wrapped negative"
    assert counts[INIT, PROV] == MAX and t.unhandled_total == MAX
    assert t.count(State.ACTIVE) >= 1 and int(t.unhandled.sum()) >= 1
    snap = t.snapshot()
    u = make()
    u.restore(snap)  # the table's own snapshot restores
    assert u.transition_counts.tolist() == counts.tolist() and u.unhandled_total == MAX


def test_counts_below_the_limit_still_add_exactly() -> None:
    t = StreamTable(8)
    for _ in range(3):
        t.open()
    snap = t.snapshot()
    snap["transitions"][INIT * N_EVENTS + PROV] = MAX - 5
    snap["unhandled_total"] = MAX - 5
    t.restore(snap)
    t.dispatch_many(np.arange(3, dtype=np.int64), np.full(3, PROV, np.uint8))
    assert t.transition_counts[INIT, PROV] == MAX - 2
    t.dispatch_many(np.zeros(3, np.int64), np.full(3, PROV, np.uint8))
    assert t.unhandled_total == MAX - 2
    t.dispatch_many(np.zeros(3, np.int64), np.full(3, PROV, np.uint8))
    assert t.unhandled_total == MAX


def test_per_slot_counts_past_a_saturated_total_restore() -> None:
    """The total saturates while per-slot counters go on: a snapshot whose per-slot sum exceeds
    a saturated total is one the table can produce, so it restores."""
    t = StreamTable(4)
    for _ in range(3):
        t.open()
    snap = t.snapshot()
    snap["unhandled"][:3] = MAX // 2
    snap["unhandled_total"] = MAX
    t.restore(snap)
    assert t.unhandled.tolist()[:3] == [MAX // 2] * 3 and t.unhandled_total == MAX
