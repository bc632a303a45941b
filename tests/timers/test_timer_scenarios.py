"""Issue 21: one scenario per sentence of the timer contract (DESIGN.md section 5).

Each behaviour runs on every implementation of a machine with timers (the reference
interpreter and one slot of a ``MachineTable``, behind the small API of ``Timed``), with the
numbers written out: the boundary nanosecond, cancel on exit, re-arm on re-entry (through a
substate, by a self-transition), net effects of completion chains, chains inside one advance,
ties in declaration order, periodic catch-up and phase, composite owners across child
transitions, restarts only while the owner is active, unhandled timer events. Then what only a
table has: release and open, ``out`` and its slot order, batches arming at the clock, snapshots.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamhsm import FIRED_DTYPE, NEVER, MachineSpec, MachineTable, ReferenceMachine

Fire = tuple[str, int, str]  # event, time_ns, timer name


class Timed:
    """A machine with timers behind one API: ``dispatch``, ``advance`` (the fired
    ``(event, time_ns, timer)`` in order), ``deadline``, ``state``, ``now``, ``unhandled``,
    ``skipped``."""

    def __init__(self, kind: str, spec: MachineSpec, now_ns: int = 0) -> None:
        self.kind = kind
        if kind == "reference":
            self.ref = ReferenceMachine(spec, now_ns=now_ns)
        else:
            self.m = spec.compile()
            self.table = MachineTable(self.m, 1, now_ns=now_ns)
            self.slot = self.table.open()

    def dispatch(self, event: str) -> bool:
        if self.kind == "reference":
            return self.ref.dispatch(event).handled
        return bool(self.table.dispatch(self.slot, event))

    def advance(self, now: int) -> list[Fire]:
        if self.kind == "reference":
            return [tuple(f) for f in self.ref.advance(now)]  # type: ignore[misc]
        out = np.zeros(64, FIRED_DTYPE)
        n = self.table.advance(now, out=out)
        names = self.m.timers.names  # type: ignore[union-attr]
        return [(self.m.event_names[e], t, names[i]) for s, e, t, i in out[:n].tolist()]

    def deadline(self, name: str) -> int:
        if self.kind == "reference":
            return self.ref.deadline(name)
        return int(self.table.deadlines(name)[self.slot])

    @property
    def state(self) -> str:
        if self.kind == "reference":
            return self.ref.current
        return self.m.state_names[self.table.states[self.slot]]

    @property
    def now(self) -> int:
        now = self.ref.now_ns if self.kind == "reference" else self.table.now_ns
        assert now is not None
        return now

    @property
    def unhandled(self) -> int:
        return self.ref.unhandled if self.kind == "reference" else int(self.table.unhandled[0])

    @property
    def skipped(self) -> tuple[int, ...]:
        return (self.ref.skipped_periods if self.kind == "reference"
                else self.table.skipped_periods)


@pytest.fixture(params=["reference", "table"])
def timed(request: pytest.FixtureRequest) -> Callable[..., Timed]:
    """``timed(spec, now_ns=0)``: a fresh machine of ``spec`` on each implementation in turn."""
    def make(spec: MachineSpec, now_ns: int = 0) -> Timed:
        return Timed(request.param, spec, now_ns)
    return make


def _ab(delay: int = 10) -> MachineSpec:
    """``A > {A1, A2}``, ``B``: A after ``delay`` -> Boom -> B, an A1 timer, a B timer."""
    s = MachineSpec("ab", ["Go", "Back", "Boom", "Self", "Stay", "Ding", "Into"], initial="A")
    s.state("A", initial="A1").state("A1", "A").state("A2", "A").state("B")
    s.on("A1", "Go", "A2").on("A2", "Go", "A1").on("A", "Back", "B").on("B", "Back", "A")
    s.on("A", "Boom", "B").on("A", "Self", "A").on("A", "Stay").on("B", "Into", "A2")
    s.after("A", delay, "Boom").after("A1", 7, "Ding").after("B", 100, "Ding")
    return s


# ---------------------------------------------------------------------------------------------
# arming, cancelling, the boundary nanosecond
def test_entry_arms_at_the_clock_and_the_deadline_nanosecond_fires(timed: Any) -> None:
    m = timed(_ab(), now_ns=1000)
    assert m.now == 1000 and m.state == "A1"
    assert (m.deadline("A.Boom"), m.deadline("A1.Ding"), m.deadline("B.Ding")) == \
        (1010, 1007, NEVER)  # the initial transition entered A and A1, at the clock
    assert m.advance(1006) == [] and m.now == 1006
    assert m.advance(1007) == [("Ding", 1007, "A1.Ding")]  # due exactly at its deadline
    assert m.deadline("A1.Ding") == NEVER and m.unhandled == 1  # nobody handles Ding in A1
    assert m.advance(1009) == [] and m.state == "A1"  # one nanosecond early: nothing
    assert m.advance(1010) == [("Boom", 1010, "A.Boom")]
    assert m.state == "B" and m.deadline("A.Boom") == NEVER and m.deadline("B.Ding") == 1110
    assert m.now == 1010


def test_exit_cancels(timed: Any) -> None:
    m = timed(_ab())
    m.advance(5)
    assert m.dispatch("Back") and m.state == "B"
    assert m.deadline("A.Boom") == NEVER and m.deadline("A1.Ding") == NEVER
    assert m.deadline("B.Ding") == 105
    assert m.advance(104) == []  # A's timers were cancelled: nothing at 7 or 10
    assert m.state == "B"


def test_reentry_arms_afresh_through_a_substate_and_by_a_self_transition(timed: Any) -> None:
    m = timed(_ab())
    m.advance(4)
    m.dispatch("Back")  # A -> B at 4
    m.advance(6)
    m.dispatch("Into")  # B -> A2 at 6: entering A2 enters A, whose timer arms
    assert m.state == "A2" and m.deadline("A.Boom") == 16 and m.deadline("A1.Ding") == NEVER
    assert m.deadline("B.Ding") == NEVER
    m.advance(9)
    m.dispatch("Self")  # an external self-transition: A exited and entered again
    assert m.state == "A1" and m.deadline("A.Boom") == 19 and m.deadline("A1.Ding") == 16
    m.advance(12)
    m.dispatch("Stay")  # handled without a transition: nothing re-arms
    assert m.deadline("A.Boom") == 19 and m.deadline("A1.Ding") == 16


def test_composite_owner_survives_child_transitions(timed: Any) -> None:
    m = timed(_ab())
    m.advance(3)
    m.dispatch("Go")  # A1 -> A2: A1's timer is cancelled, A's keeps its deadline
    assert m.deadline("A.Boom") == 10 and m.deadline("A1.Ding") == NEVER
    m.advance(6)
    m.dispatch("Go")  # A2 -> A1: A1's timer arms afresh, A's is untouched
    assert m.deadline("A.Boom") == 10 and m.deadline("A1.Ding") == 13
    assert m.advance(10) == [("Boom", 10, "A.Boom")]


def test_completion_chains_have_a_net_effect(timed: Any) -> None:
    """A transient state entered and left inside one dispatch ends with its timer cancelled; a
    state left and entered again by the chain ends armed afresh; a final state's timer runs."""
    s = MachineSpec("c", ["Go", "Tick", "Again"], initial="A")
    s.state("A").state("T").state("C", initial="C1").state("C1", "C").final("F", "C")
    s.state("D")
    s.on("A", "Go", "T").on_completion("T", "C").on("C1", "Go", "F").on_completion("C", "D")
    s.on("D", "Again", "A")
    s.after("T", 5, "Tick").after("C", 6, "Tick").after("F", 7, "Tick").after("A", 50, "Tick")
    m = timed(s)
    m.advance(2)
    m.dispatch("Go")  # A -> T (transient) -> C -> C1
    assert m.state == "C1"
    assert (m.deadline("T.Tick"), m.deadline("C.Tick"), m.deadline("A.Tick")) == \
        (NEVER, 8, NEVER)
    m.dispatch("Go")  # C1 -> F (final) completes C -> D: F and C entered/left, cancelled
    assert m.state == "D" and m.deadline("C.Tick") == NEVER and m.deadline("F.Tick") == NEVER
    assert m.advance(100) == []


def test_unhandled_timer_events_are_counted(timed: Any) -> None:
    s = MachineSpec("u", ["Ping"], initial="A").state("A").every("A", 4, "Ping")
    m = timed(s)
    assert m.advance(4) == [("Ping", 4, "A.Ping")] and m.unhandled == 1
    assert m.advance(8) == [("Ping", 8, "A.Ping")] and m.unhandled == 2


# ---------------------------------------------------------------------------------------------
# advance: chains, ties, periodic timers
def test_a_chain_fires_inside_one_advance_each_at_its_deadline(timed: Any) -> None:
    s = MachineSpec("chain", ["ToB", "ToC", "ToD"], initial="A")
    s.state("A").state("B").state("C").state("D")
    s.on("A", "ToB", "B").on("B", "ToC", "C").on("C", "ToD", "D")
    s.after("A", 10, "ToB").after("B", 5, "ToC").after("C", 1, "ToD").after("D", 1000, "ToB")
    m = timed(s)
    fired = m.advance(500)
    # B's timer armed at 10 (the clock during A's dispatch), C's at 15: each fired in this call
    assert fired == [("ToB", 10, "A.ToB"), ("ToC", 15, "B.ToC"), ("ToD", 16, "C.ToD")]
    assert m.state == "D" and m.now == 500
    assert m.deadline("D.ToB") == 1016  # D was entered with the clock at 16


@pytest.mark.parametrize("first", ["X", "Y"])
def test_ties_fire_in_declaration_order(timed: Any, first: str) -> None:
    """Two timers of A due at the same nanosecond: the first declared fires first, and its
    transition out of A cancels the other one."""
    s = MachineSpec("tie", ["GoX", "GoY"], initial="A").state("A").state("X").state("Y")
    s.on("A", "GoX", "X").on("A", "GoY", "Y")
    order = ["X", "Y"] if first == "X" else ["Y", "X"]
    for t in order:
        s.after("A", 10, f"Go{t}", name=t)
    m = timed(s)
    assert m.advance(10) == [(f"Go{first}", 10, first)]
    assert m.state == first


def test_ties_across_owners_follow_declaration_not_depth(timed: Any) -> None:
    s = MachineSpec("tie2", ["Up", "Down"], initial="P").state("P", initial="K")
    s.state("K", "P").state("Q").state("R")
    s.on("K", "Down", "R").on("P", "Up", "Q")
    s.after("K", 10, "Down", name="inner").after("Root", 10, "Up", name="outer")
    m = timed(s)
    assert m.advance(10) == [("Down", 10, "inner"), ("Up", 10, "outer")]
    assert m.state == "R" and m.unhandled == 1  # Up reached R, which does not handle it


def test_periodic_catch_up_fires_once_and_counts_the_skipped_periods(timed: Any) -> None:
    s = MachineSpec("p", ["Tick"], initial="A").state("A").on("A", "Tick")
    s.every("A", 10, "Tick", name="tick")
    m = timed(s)
    assert m.deadline("tick") == 10
    assert m.advance(35) == [("Tick", 10, "tick")]  # 20 and 30 skipped, not replayed
    assert m.skipped == (2,) and m.deadline("tick") == 40
    assert m.advance(40) == [("Tick", 40, "tick")]  # exactly on its phase
    assert m.skipped == (2,) and m.deadline("tick") == 50
    assert m.advance(49) == []
    assert m.advance(1000) == [("Tick", 50, "tick")]
    assert m.skipped == (97,) and m.deadline("tick") == 1010  # first 50 + k * 10 > 1000


def test_periodic_phase_is_kept_and_a_huge_jump_fires_once(timed: Any) -> None:
    s = MachineSpec("p", ["Tick"], initial="A").state("A").on("A", "Tick")
    s.every("A", 7, "Tick", name="tick")
    m = timed(s, now_ns=3)
    assert m.deadline("tick") == 10
    jump = 10 + 7 * 10**15 + 5
    assert m.advance(jump) == [("Tick", 10, "tick")]
    assert m.skipped == (10**15,) and m.deadline("tick") == 10 + 7 * (10**15 + 1)


def test_periodic_self_rearm_chains_inside_one_advance(timed: Any) -> None:
    """A periodic timer whose event re-enters its owner is armed afresh from its deadline, so it
    fires again in the same advance (what bounds it is the advance's now). Its next phase is
    taken before the dispatch, so the periods up to now count as skipped each time (2 at 10,
    1 at 20, 0 at 30) although the re-entries replay them."""
    s = MachineSpec("p", ["Tick"], initial="A").state("A").on("A", "Tick", "A")
    s.every("A", 10, "Tick", name="tick")
    m = timed(s)
    assert m.advance(35) == [("Tick", 10, "tick"), ("Tick", 20, "tick"), ("Tick", 30, "tick")]
    assert m.skipped == (3,) and m.deadline("tick") == 40


# ---------------------------------------------------------------------------------------------
# restart
def _restart() -> MachineSpec:
    s = MachineSpec("r", ["Keep", "Leave", "Come", "Expire", "Beat"], initial="A")
    s.state("A").state("B")
    s.on("Root", "Keep", restart="lease").on("A", "Leave", "B", restart="lease")
    s.on("B", "Come", "A", restart=["lease", "beat"]).on("A", "Expire", "B").on("A", "Beat")
    s.after("A", 10, "Expire", name="lease").every("Root", 4, "Beat", name="beat")
    return s


def test_restart_arms_afresh_while_the_owner_is_active(timed: Any) -> None:
    m = timed(_restart())
    m.advance(6)  # beat fired at 4, next 8
    assert m.deadline("lease") == 10 and m.deadline("beat") == 8
    assert m.dispatch("Keep")
    assert m.deadline("lease") == 16  # restarted from the clock
    assert m.advance(15) == [("Beat", 8, "beat")]  # once per advance, 12 skipped
    assert m.deadline("lease") == 16 and m.deadline("beat") == 16 and m.skipped == (0, 1)


def test_restart_does_nothing_when_the_owner_is_not_active_after(timed: Any) -> None:
    m = timed(_restart())
    m.advance(3)
    m.dispatch("Leave")  # A -> B restarting lease: A is not active after, so it stays off
    assert m.state == "B" and m.deadline("lease") == NEVER
    m.advance(5)
    m.dispatch("Keep")  # Root handles it, lease's owner A is not active
    assert m.deadline("lease") == NEVER
    m.dispatch("Come")  # B -> A, restarting lease (armed by the entry anyway) and beat
    assert m.deadline("lease") == 15 and m.deadline("beat") == 9  # beat's phase starts over


# ---------------------------------------------------------------------------------------------
# what only a table has
def _table(capacity: int = 4, now_ns: int = 0) -> tuple[Any, MachineTable]:
    m = _ab().compile()
    return m, MachineTable(m, capacity, now_ns=now_ns)


def test_release_cancels_and_open_arms_at_the_clock() -> None:
    m, t = _table()
    a, b = t.open(), t.open()
    t.advance(5)
    t.release(a)
    assert t.deadlines("A.Boom")[a] == NEVER and t.deadlines("A1.Ding")[a] == NEVER
    assert t.deadlines("A.Boom")[b] == 10  # the neighbour keeps its timers
    t.advance(100)
    assert t.open() == a
    assert t.deadlines("A.Boom")[a] == 110 and t.deadlines("A1.Ding")[a] == 107


def test_out_records_in_slot_order_then_deadline_order() -> None:
    m, t = _table(3)
    for _ in range(3):
        t.open()
    t.dispatch(2, "Go")  # slot 2 in A2: only A's timer
    out = np.zeros(8, FIRED_DTYPE)
    out[:] = (-1, 255, -1, 255)
    n = t.advance(10, out=out)
    assert n == 5
    boom, ding = m.event_code("Boom"), m.event_code("Ding")
    assert out[:n].tolist() == [(0, ding, 7, 1), (0, boom, 10, 0), (1, ding, 7, 1),
                                (1, boom, 10, 0), (2, boom, 10, 0)]
    assert out[n:].tolist() == [(-1, 255, -1, 255)] * 3  # the rest is left alone


def test_a_too_small_out_keeps_the_first_records_and_counts_all() -> None:
    m, t = _table(3)
    for _ in range(3):
        t.open()
    out = np.zeros(2, FIRED_DTYPE)
    assert t.advance(10, out=out) == 6  # more than len(out)
    assert out.tolist() == [(0, m.event_code("Ding"), 7, 1), (0, m.event_code("Boom"), 10, 0)]
    assert t.advance(200, out=np.zeros(0, FIRED_DTYPE)) == 3  # B's Ding of every slot
    assert t.advance(300) == 0


def test_batches_arm_at_the_clock() -> None:
    m, t = _table(4)
    for _ in range(4):
        t.open()
    t.advance(5)
    back = m.event_code("Back")
    assert t.dispatch_many(np.array([0, 2], np.int64), np.array([back, back], np.uint8)) == 2
    assert t.deadlines("B.Ding").tolist() == [105, NEVER, 105, NEVER]
    assert t.deadlines("A.Boom").tolist() == [NEVER, 10, NEVER, 10]
    t.advance(8)  # the A1 timers of slots 1 and 3 fire at 7 (unhandled)
    assert t.broadcast("Back") == 4  # 0, 2: B -> A; 1, 3: A -> B, all at 8
    assert t.deadlines("A.Boom").tolist() == [18, NEVER, 18, NEVER]
    assert t.deadlines("B.Ding").tolist() == [NEVER, 108, NEVER, 108]
    assert t.unhandled.tolist() == [0, 1, 0, 1]


def test_snapshot_restore_keeps_the_clock_deadlines_and_skipped_periods() -> None:
    s = _restart()
    m = s.compile()
    t = MachineTable(m, 3, now_ns=50)
    for _ in range(3):
        t.open()
    t.dispatch(1, "Leave")
    t.advance(63)
    snap = t.snapshot()
    fresh = MachineTable(m, 3)
    fresh.restore(snap)
    assert fresh.now_ns == t.now_ns == 63
    assert fresh.skipped_periods == t.skipped_periods == (0, 6)
    for name in m.timers.names:
        assert fresh.deadlines(name).tolist() == t.deadlines(name).tolist()
    a, b = np.zeros(16, FIRED_DTYPE), np.zeros(16, FIRED_DTYPE)
    assert fresh.advance(1000, out=a) == t.advance(1000, out=b) > 0
    assert a.tolist() == b.tolist() and fresh.states.tolist() == t.states.tolist()


def test_an_old_version_snapshot_restores_with_no_timer_armed() -> None:
    m, t = _table(2, now_ns=40)
    t.open()
    t.open()
    t.dispatch(1, "Back")
    snap = t.snapshot()
    old = {k: v for k, v in snap.items() if k not in ("now_ns", "deadlines", "skipped")}
    old["version"] = 4
    fresh = MachineTable(m, 2, now_ns=500)
    fresh.restore(old)
    assert fresh.now_ns == 0
    for name in m.timers.names:
        assert fresh.deadlines(name).tolist() == [NEVER, NEVER]
    assert fresh.states.tolist() == t.states.tolist()
    assert fresh.advance(10**6) == 0  # nothing armed until states are entered again
    fresh.dispatch(1, "Back")
    assert fresh.deadlines("A.Boom").tolist() == [NEVER, 10**6 + 10]
