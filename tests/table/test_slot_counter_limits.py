"""Per-slot unhandled counters saturate at 2**63-1 like the total (docs/design.md "Counters and
limits"), through every dispatch path (one event, batches, traced batches, broadcasts, flags,
history kernels, single instances), so the table's own snapshot always restores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamhsm import MachineSpec, MachineTable

MAX = 2**63 - 1


def _machine(flags: bool = False, history: bool = False) -> Any:
    s = MachineSpec("slots", ["Next", "Maintain", "Resume", "Ping"], "Live")
    if flags:
        s.flag("hot")
    s.state("Live", initial="Idle").state("Idle", "Live").state("Busy", "Live")
    s.state("Maintenance").on("Idle", "Next", "Busy").on("Busy", "Next", "Idle")
    s.on("Live", "Maintain", "Maintenance")
    s.on("Maintenance", "Resume", "Live", history="deep" if history else None)
    return s.compile()


def _one(t: Any, ping: int) -> None:
    for i in range(len(t)):
        t.dispatch(i, ping)


def _batch(t: Any, ping: int) -> None:
    n = len(t)
    t.dispatch_many(np.arange(n, dtype=np.int64), np.full(n, ping, np.uint8))
    t.dispatch_many(np.zeros(3, np.int32), np.full(3, ping, np.int32))


def _traced(t: Any, ping: int) -> None:
    t.enable_trace(4)
    _batch(t, ping)


def _broadcast(t: Any, ping: int) -> None:
    t.broadcast(ping)
    t.broadcast(ping)


def _traced_broadcast(t: Any, ping: int) -> None:
    t.enable_trace(4)
    _broadcast(t, ping)


RUNS = [("dispatch", _one), ("dispatch_many", _batch), ("traced batch", _traced),
        ("broadcast", _broadcast), ("traced broadcast", _traced_broadcast)]
MACHINES = [("plain", {}), ("flags", {"flags": True}), ("history", {"history": True})]


@pytest.mark.parametrize("kw", [m[1] for m in MACHINES], ids=[m[0] for m in MACHINES])
@pytest.mark.parametrize("run", [r[1] for r in RUNS], ids=[r[0] for r in RUNS])
def test_slot_counters_saturate_and_the_own_snapshot_restores(
        run: Callable[[Any, int], None], kw: dict[str, bool]) -> None:
    m = _machine(**kw)
    t = MachineTable(m, 16)
    for _ in range(8):
        t.open()
    snap = t.snapshot()
    snap["unhandled"][:8] = MAX
    snap["unhandled"][1] = MAX - 1
    snap["unhandled_total"] = MAX
    t.restore(snap)
    ping = m.event_code("Ping")
    run(t, ping)
    assert t.unhandled.tolist()[:8] == [MAX] * 8
    assert t.unhandled_total == MAX
    MachineTable(m, 16).restore(t.snapshot())  # the table's own snapshot restores


def test_slot_counts_below_the_limit_still_add_exactly() -> None:
    m = _machine()
    t = MachineTable(m, 4)
    t.open()
    snap = t.snapshot()
    snap["unhandled"][0] = snap["unhandled_total"] = MAX - 3
    t.restore(snap)
    t.dispatch_many(np.zeros(2, np.int64), np.full(2, m.event_code("Ping"), np.uint8))
    assert int(t.unhandled[0]) == MAX - 1

