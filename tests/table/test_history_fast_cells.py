"""Issue 20, history cells in ``dispatch_many``'s chunked kernels: the fast codes.

A history cell whose program is one record write (exiting one owner) or one record read that
rests where it resolves carries a fast code in the top bits of its step entry
(``_pseudo.Chains.fast_code``), and the chunked batch kernels run no program for it
(``hsm_history_batch``); every other history cell runs its program. These tests pin which cells
get which code, and check that a big batch through the chunked kernels leaves exactly what the
same events leave dispatched one at a time (``hsm_apply_history``, which ignores the codes):
states, records, occupancy, transition and unhandled counts, on flag-free and flagged machines,
in both chunk kernels (frequent transitions: branch-free; rare: branchy).
"""

from __future__ import annotations

import numpy as np
import pytest

from streamhsm import MachineSpec, MachineTable
from streamhsm._engine_tables import STEP_FAST_SHIFT, STEP_MOVED, STEP_UNHANDLED
from streamhsm._pseudo import FAST_CODES, FAST_READ, FAST_WRITE
from streamhsm.compiler import CompiledMachine

EVENTS = ["Go", "Flip", "Maintain", "Resume", "Shallow", "Finish", "Nest", "Unnest", "Ping"]
PING = EVENTS.index("Ping")
#: larger than the batches that run event by event (HSM_LOCAL_MIN_EVENTS)
BIG = 30_000


def spec(flagged: bool) -> MachineSpec:
    """Owners ``Live`` (a transient ``Boot`` when flagged: it completes to ``Idle`` if
    ``ready``), ``Outer`` and ``Inner`` nested in it; exits of one owner, of two at once and
    from a final leaf (a cleared record); reads of both kinds, one after a write."""
    s = MachineSpec("fast_cells" + ("_f" if flagged else ""), EVENTS, "Live")
    s.state("Live", initial="Boot").state("Boot", "Live").state("Idle", "Live")
    s.state("Active", "Live", initial="A1").state("A1", "Active").state("A2", "Active")
    s.final("Done", "Live")
    s.state("Maintenance")
    s.state("Outer", initial="Inner").state("Inner", "Outer", initial="X")
    s.state("X", "Inner").state("Y", "Inner").state("Z", "Outer")
    if flagged:
        s.flag("ready")
        s.on_completion("Boot", "Idle", guard="ready")
    s.on("Boot", "Go", "Idle").on("Idle", "Go", "A1")
    s.on("A1", "Flip", "A2").on("A2", "Flip", "A1")
    s.on("Live", "Maintain", "Maintenance").on("Live", "Finish", "Done").on("Live", "Ping")
    s.on("Maintenance", "Resume", "Live", history="deep")
    s.on("Maintenance", "Shallow", "Live", history="shallow")
    s.on("Maintenance", "Nest", "Outer", history="deep")
    s.on("X", "Flip", "Y").on("Y", "Flip", "X").on("X", "Go", "Z")
    s.on("Z", "Go", "Inner", history="deep").on("Z", "Unnest", "Maintenance")
    s.on("Outer", "Unnest", "Maintenance")
    s.on("Inner", "Shallow", "Inner", history="shallow")
    return s


def fast(m: CompiledMachine, state: str, event: str, mask: int = 0) -> int | None:
    """The fast code of a history cell, None if the cell is not one."""
    v = int(m.engine_tables.step[m.state_code(state) << m.n_flags | mask, m.event_code(event)])
    if v & (STEP_UNHANDLED | STEP_MOVED) != STEP_UNHANDLED | STEP_MOVED:
        return None
    return v >> STEP_FAST_SHIFT


def test_fast_codes_of_history_cells() -> None:
    m = spec(True).compile()
    live, outer, inner = (m.history_owner(o) for o in ("Live", "Outer", "Inner"))
    assert (live, outer, inner) == (0, 1, 2)
    for leaf in ("Boot", "Idle", "A1", "A2"):  # exits Live: records the leaf
        assert fast(m, leaf, "Maintain") == fast(m, leaf, "Maintain", 1) == FAST_WRITE + live
    assert fast(m, "Z", "Unnest") == FAST_WRITE + outer
    assert fast(m, "X", "Go") == FAST_WRITE + inner
    # exits two owners, or from a final leaf (the record is cleared): the program runs
    assert fast(m, "X", "Unnest") == fast(m, "Done", "Maintain") == 0
    # entering a final state clears its parent's record: a program too
    assert fast(m, "Idle", "Finish") == 0
    assert fast(m, "Maintenance", "Resume") == FAST_READ + 2 * live + 1  # lut row: deep
    assert fast(m, "Maintenance", "Shallow") == FAST_READ + 2 * live
    assert fast(m, "Maintenance", "Nest") == fast(m, "Maintenance", "Nest", 1)
    assert fast(m, "Maintenance", "Nest") == FAST_READ + 2 * outer + 1
    assert fast(m, "Z", "Go") == FAST_READ + 2 * inner + 1
    # with ``ready``, Live's history can resolve to Boot, which completes: not one read
    assert fast(m, "Maintenance", "Resume", 1) == fast(m, "Maintenance", "Shallow", 1) == 0
    assert fast(m, "X", "Shallow") == 0  # a write, then a read
    assert fast(m, "Idle", "Go") is None and fast(m, "Idle", "Ping") is None
    codes = m.engine_tables.step >> STEP_FAST_SHIFT
    assert int(codes.max()) < FAST_CODES
    plain = m.engine_tables.kind != 3
    assert not codes[plain].any()  # only history cells carry a code


def test_machines_without_history_carry_no_codes() -> None:
    s = MachineSpec("plain", ["Go"], "A")
    s.state("A").state("B").on("A", "Go", "B").on("B", "Go", "A")
    assert int(s.compile().engine_tables.step.max()) < STEP_MOVED << 1


def _traffic(m: CompiledMachine, rng: np.random.Generator, n_slots: int, rare: bool,
             sdt: type, edt: type) -> tuple[np.ndarray, np.ndarray]:
    slots = rng.integers(0, n_slots, BIG)
    events = rng.integers(0, m.n_events, BIG)
    if rare:  # mostly handled in place: the branchy kernel
        events = np.where(rng.random(BIG) < 0.03, events, PING)
    return slots.astype(sdt), events.astype(edt)


def _kinds(m: CompiledMachine, table: MachineTable, slots: np.ndarray,
           events: np.ndarray) -> tuple[int, set[str]]:
    """Dispatch one event at a time; return the handled count and the kinds of history cells
    the events ran into (``write``, ``read``, ``program``)."""
    step, k = m.engine_tables.step, m.n_flags
    handled, kinds = 0, set()
    for s, e in zip(slots.tolist(), events.tolist(), strict=True):
        v = int(step[int(table.states[s]) << k | int(table.flags[s]), e])
        if v & (STEP_UNHANDLED | STEP_MOVED) == STEP_UNHANDLED | STEP_MOVED:
            code = v >> STEP_FAST_SHIFT
            kinds.add("read" if code >= FAST_READ else "write" if code else "program")
        handled += table.dispatch(s, e)
    return handled, kinds


@pytest.mark.parametrize("flagged", [False, True])
@pytest.mark.parametrize(("sdt", "edt"), [(np.int64, np.uint8), (np.int32, np.int64)])
def test_chunked_history_cells_match_event_by_event(flagged: bool, sdt: type, edt: type) -> None:
    m = spec(flagged).compile()
    n_slots = 3000
    rng = np.random.default_rng(20 + flagged)
    batch, single = MachineTable(m, n_slots), MachineTable(m, n_slots)
    for t in (batch, single):
        for _ in range(n_slots):
            t.open()
    if flagged:
        ready = np.flatnonzero(rng.random(n_slots) < 0.5)
        for t in (batch, single):
            t.set_flag_many(ready, "ready", True)
    for rare in (False, True, False):
        slots, events = _traffic(m, rng, n_slots, rare, sdt, edt)
        handled, kinds = _kinds(m, single, slots, events)
        assert kinds == {"write", "read", "program"}  # every path ran
        assert batch.dispatch_many(slots, events) == handled
        np.testing.assert_array_equal(batch.states, single.states)
        for owner in m.history_owners:
            np.testing.assert_array_equal(batch.history(owner), single.history(owner))
        for name in m.state_names:
            assert batch.count(name) == single.count(name), name
        np.testing.assert_array_equal(batch.transition_counts, single.transition_counts)
        np.testing.assert_array_equal(batch.unhandled, single.unhandled)
