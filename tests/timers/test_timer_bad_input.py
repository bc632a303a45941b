"""Issue 21: bad input to timers gets a clear exception naming the value, and changes nothing.

Times (``advance``, ``now_ns=``) that go backwards, are not ints, are negative or beyond the
clock's limit; delays out of range; unknown, duplicate or too many timer names; timers beside
history records; ``out`` arrays of the wrong kind; snapshots whose timers cannot be. After each
refusal the states, every deadline, the clock, the unhandled counters and the skipped periods
are what they were (and a timer that was due has not fired). Last, ``advance`` with a
preallocated ``out`` allocates nothing.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any

import numpy as np
import pytest

from streamhsm import (
    FIRED_DTYPE,
    NEVER,
    MachineDefinitionError,
    MachineSpec,
    MachineTable,
    ReferenceMachine,
    SnapshotError,
)
from streamhsm.machine import MAX_DELAY_NS, MAX_TIMERS

LONGEST = 1000
LIMIT = NEVER - LONGEST  # the largest clock reading of _spec()'s machine


def _spec() -> MachineSpec:
    s = MachineSpec("bad", ["Go", "Boom", "Tick"], initial="A").state("A").state("B")
    s.on("A", "Go", "B").on("B", "Go", "A").on("A", "Boom", "B").on("Root", "Tick")
    return s.after("A", 10, "Boom").every("Root", LONGEST, "Tick", name="tick")


def _table() -> MachineTable:
    """Three slots at clock 5: two open (one in B), the third released; A's timer is due at
    10, so an advance that went through would change things."""
    t = MachineTable(_spec().compile(), 3)
    for _ in range(3):
        t.open()
    t.advance(5)
    t.dispatch(1, "Go")
    t.release(2)
    return t


def _state(t: MachineTable) -> tuple[Any, ...]:
    names = t.machine.timers.names
    return (t.states.tolist(), t.unhandled.tolist(), t.now_ns, t.skipped_periods,
            [t.deadlines(n).tolist() for n in names])


def _ref() -> ReferenceMachine:
    r = ReferenceMachine(_spec())
    r.advance(5)
    return r


def _ref_state(r: ReferenceMachine) -> tuple[Any, ...]:
    return (r.current, r.unhandled, r.now_ns, r.skipped_periods, r.deadlines)


# ---------------------------------------------------------------------------------------------
# times
BAD_TIMES = [
    (4, ValueError, r"now_ns 4 is before the (table's )?clock 5"),
    (0, ValueError, r"now_ns 0 is before the (table's )?clock 5"),
    (-1, ValueError, r"got -1\b"),
    (LIMIT + 1, ValueError, rf"0\.\.{LIMIT}.*got {LIMIT + 1}"),
    (2**63, ValueError, rf"got {2**63}"),
    (20.0, TypeError, r"float 20\.0"),
    (np.float64(20), TypeError, r"float64 .*20\.0"),
    (True, TypeError, r"bool True"),
    (np.bool_(True), TypeError, r"bool.*True"),
    ("20", TypeError, r"str '20'"),
    (None, TypeError, r"NoneType None"),
]


@pytest.mark.parametrize(("now", "exc", "match"), BAD_TIMES)
def test_table_advance_refuses_bad_times_and_changes_nothing(now: object, exc: type,
                                                              match: str) -> None:
    t = _table()
    before = _state(t)
    out = np.zeros(8, FIRED_DTYPE)
    with pytest.raises(exc, match=match):
        t.advance(now, out=out)
    assert _state(t) == before
    assert out.tobytes() == bytes(out.nbytes)  # nothing recorded


@pytest.mark.parametrize(("now", "exc", "match"), BAD_TIMES)
def test_reference_advance_refuses_bad_times_and_changes_nothing(now: object, exc: type,
                                                                  match: str) -> None:
    r = _ref()
    before = _ref_state(r)
    with pytest.raises(exc, match=match):
        r.advance(now)  # type: ignore[arg-type]
    assert _ref_state(r) == before


def test_the_limit_itself_and_numpy_ints_are_accepted() -> None:
    t, r = _table(), _ref()
    assert t.advance(np.int64(20)) == 1 and r.advance(np.int64(20)) == [("Boom", 10, "A.Boom")]
    t.advance(LIMIT)
    r.advance(LIMIT)
    assert t.now_ns == r.now_ns == LIMIT
    phase = LIMIT // LONGEST * LONGEST + LONGEST  # the first multiple of the period after LIMIT
    assert LIMIT < phase <= NEVER
    assert t.deadlines("tick").tolist() == [phase, phase, NEVER] and r.deadline("tick") == phase
    t.dispatch(0, "Go")  # B -> A at the last clock reading: A's timer arms without overflow
    assert t.state(0).name == "A" and t.deadlines("A.Boom")[0] == LIMIT + 10


@pytest.mark.parametrize(("now", "exc", "match"), [
    (-1, ValueError, r"got -1\b"), (LIMIT + 1, ValueError, rf"got {LIMIT + 1}"),
    (1.0, TypeError, r"float 1\.0"), (True, TypeError, r"bool True"),
    ("0", TypeError, r"str '0'"),
])
def test_construction_refuses_bad_clocks(now: object, exc: type, match: str) -> None:
    m = _spec().compile()
    with pytest.raises(exc, match=match):
        MachineTable(m, 2, now_ns=now)
    with pytest.raises(exc, match=match):
        ReferenceMachine(_spec(), now_ns=now)  # type: ignore[arg-type]


def test_a_machine_without_timers_has_no_clock() -> None:
    s = MachineSpec("plain", ["Go"], initial="A").state("A").on("A", "Go")
    t, r = MachineTable(s.compile(), 2), ReferenceMachine(s)
    assert t.now_ns is None and r.now_ns is None and t.skipped_periods == ()
    with pytest.raises(ValueError, match=r"machine 'plain' has no timers"):
        t.advance(1)
    with pytest.raises(ValueError, match=r"machine 'plain' has no timers"):
        r.advance(1)
    with pytest.raises(ValueError, match=r"machine 'plain' has no timers"):
        MachineTable(s.compile(), 2, now_ns=7)
    with pytest.raises(ValueError, match=r"machine 'plain' has no timers.*got 7"):
        ReferenceMachine(s, now_ns=7)
    with pytest.raises(ValueError, match=r"machine 'plain' has no timers"):
        t.deadlines("x")


# ---------------------------------------------------------------------------------------------
# declarations
@pytest.mark.parametrize("kind", ["after", "every"])
@pytest.mark.parametrize(("delay", "exc", "match"), [
    (0, ValueError, r"got 0\b"), (-5, ValueError, r"got -5\b"),
    (MAX_DELAY_NS + 1, ValueError, rf"got {MAX_DELAY_NS + 1}"),
    (True, TypeError, r"bool True"), (2.5, TypeError, r"float 2\.5"),
    (np.int64(5), TypeError, r"int64"), ("5", TypeError, r"str '5'"),
])
def test_delays_out_of_range_are_refused(kind: str, delay: object, exc: type,
                                         match: str) -> None:
    if kind == "after" and delay == 0 and type(delay) is int:
        delay, match = -1, r"got -1\b"  # zero is a valid one-shot delay (due at once): below
    s = _spec()
    before = s.timers
    with pytest.raises(exc, match=match):
        getattr(s, kind)("B", delay, "Go", name="x")
    assert s.timers == before
    s.compile()  # the declaration is as good as before


def test_a_zero_delay_is_a_one_shot_timer_only() -> None:
    s = _spec().after("B", 0, "Go", name="now")
    assert s.timers[-1].delay_ns == 0
    with pytest.raises(ValueError, match=r"period_ns must be 1\.\..* got 0\b"):
        _spec().every("B", 0, "Go", name="x")


def test_the_longest_delay_is_accepted() -> None:
    s = _spec().every("B", MAX_DELAY_NS, "Go", name="slow")
    t = MachineTable(s.compile(), 1)
    t.open()
    t.dispatch(0, "Go")
    assert t.deadlines("slow")[0] == MAX_DELAY_NS
    with pytest.raises(ValueError, match=rf"got {NEVER - MAX_DELAY_NS + 1}"):
        t.advance(NEVER - MAX_DELAY_NS + 1)


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda s: s.after("B", 5, "Go", name="A.Boom"), r"timer name 'A\.Boom' is declared twice"),
    (lambda s: s.after("B", 5, "Go").after("B", 7, "Go"), r"timer name 'B\.Go' is declared twice"),
    (lambda s: s.on("B", "Boom", restart="nope"), r"restarts unknown timer 'nope'"),
    (lambda s: s.on("B", "Boom", "A", restart=["tick", "A.Boomm"]),
     r"restarts unknown timer 'A\.Boomm'"),
    (lambda s: s.after("Z", 5, "Go"), r"owned by unknown state 'Z'"),
    (lambda s: s.after("B", 5, "Zap"), r"fires unknown event 'Zap'"),
    (lambda s: [s.after("B", 5, "Go", name=f"t{i}") for i in range(MAX_TIMERS - 1)],
     rf"declares {MAX_TIMERS + 1} timers; at most {MAX_TIMERS}"),
    (lambda s: s.state("C", initial="C1").state("C1", "C").on("B", "Boom", "C", history="deep"),
     r"has timers and history records \(\['C'\]\)"),
])
def test_compile_refuses_bad_timer_declarations(mutate: Any, match: str) -> None:
    s = _spec()
    mutate(s)
    with pytest.raises(MachineDefinitionError, match=match):
        s.compile()


def test_exactly_max_timers_compile() -> None:
    s = _spec()
    for i in range(MAX_TIMERS - 2):
        s.after("B", 5 + i, "Go", name=f"t{i}")
    m = s.compile()
    assert m.timers is not None and m.timers.n_timers == MAX_TIMERS


def test_the_reference_refuses_unknown_restart_names() -> None:
    with pytest.raises(ValueError, match=r"restarts unknown timer 'nope'"):
        ReferenceMachine(_spec().on("B", "Boom", restart="nope"))


@pytest.mark.parametrize(("name", "exc", "match"), [
    ("nope", ValueError, r"no timer 'nope' \(timers: \['A\.Boom', 'tick'\]\)"),
    ("a.boom", ValueError, r"no timer 'a\.boom'"),
    (0, TypeError, r"timer name must be a str, got int 0"),
    (None, TypeError, r"got NoneType None"),
])
def test_unknown_timer_names_are_refused(name: object, exc: type, match: str) -> None:
    t, r = _table(), _ref()
    with pytest.raises(exc, match=match):
        t.deadlines(name)
    with pytest.raises(exc, match=match):
        r.deadline(name)  # type: ignore[arg-type]


def test_deadlines_are_read_only_views() -> None:
    t = _table()
    view = t.deadlines("A.Boom")
    assert view.dtype == np.int64 and view.shape == (3,)
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 1
    t.advance(10)
    assert view.tolist() == [NEVER, NEVER, NEVER]  # a view: it follows the table


# ---------------------------------------------------------------------------------------------
# out
def _read_only() -> np.ndarray:
    a = np.zeros(4, FIRED_DTYPE)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize(("out", "exc", "match"), [
    (np.zeros(4, np.int64), ValueError, r"FIRED_DTYPE, got a 1-D array of int64"),
    (np.zeros(4, [("slot", np.int64), ("event", np.uint8), ("time_ns", np.int64),
                  ("timer", np.uint8)]), ValueError, r"FIRED_DTYPE, got a 1-D array"),
    (np.zeros((2, 2), FIRED_DTYPE), ValueError, r"got a 2-D array"),
    (np.zeros(8, FIRED_DTYPE)[::2], ValueError, r"C-contiguous, got an array of strides \(48,\)"),
    (_read_only(), ValueError, r"writeable, got a read-only array of 4 records"),
    ([(0, 0, 0, 0)], TypeError, r"of FIRED_DTYPE or None, got list"),
    (np.zeros(4, FIRED_DTYPE).tobytes(), TypeError, r"got bytes"),
])
def test_bad_out_arrays_are_refused_and_nothing_fires(out: object, exc: type,
                                                      match: str) -> None:
    t = _table()
    before = _state(t)
    with pytest.raises(exc, match=match):
        t.advance(50, out=out)
    assert _state(t) == before  # A's timer, due at 10, has not fired


# ---------------------------------------------------------------------------------------------
# snapshots
@pytest.mark.parametrize(("change", "match"), [
    (lambda s: s.update(now_ns=-1), r"snapshot now_ns must be 0\.\.\d+.*got -1"),
    (lambda s: s.update(now_ns=1.5), r"snapshot now_ns must be an int.*float 1\.5"),
    (lambda s: s.update(now_ns=LIMIT + 1), rf"got {LIMIT + 1}"),
    (lambda s: s["deadlines"].__setitem__(2, 7), r"deadline 7 of timer 'A\.Boom' at slot 2"),
    (lambda s: s["deadlines"].__setitem__(0, 5), r"deadline 5 of timer 'A\.Boom' at slot 0"),
    (lambda s: s["deadlines"].__setitem__(0, 16), r"deadline 16 of timer 'A\.Boom' at slot 0"),
    (lambda s: s["deadlines"].__setitem__(1, 9), r"deadline 9 of timer 'A\.Boom' at slot 1"),
    (lambda s: s["skipped"].__setitem__(1, -1), r"skipped periods must not be negative"),
    (lambda s: s.update(deadlines=s["deadlines"][:-1]), r"deadlines"),
])
def test_snapshots_with_impossible_timers_are_refused(change: Any, match: str) -> None:
    t = _table()
    snap = t.snapshot()
    change(snap)
    before = _state(t)
    with pytest.raises(SnapshotError, match=match):
        t.restore(snap)
    assert _state(t) == before


# ---------------------------------------------------------------------------------------------
# allocations
def _blocks_after(fn: Any) -> int:
    """Blocks still allocated after a warm call of ``fn`` (as tests/table/test_allocations.py
    measures them; warmed ten times, past the interpreter's free lists filling up)."""
    for _ in range(10):
        fn()
    gc.collect()
    before = sys.getallocatedblocks()
    fn()
    gc.collect()
    return sys.getallocatedblocks() - before


@pytest.mark.usefixtures("frozen_heap")
def test_advance_with_out_allocates_nothing() -> None:
    """1000 slots, a periodic Root timer and a one-shot one firing into transitions: each call
    fires about 2,000 timers into a preallocated ``out`` and keeps no block, and its peak
    memory shows no per-fire temporaries."""
    s = MachineSpec("alloc", ["Go", "Tick", "Back"], initial="A").state("A").state("B")
    s.on("A", "Go", "B").on("B", "Back", "A").on("Root", "Tick", restart="back")
    s.every("Root", 10, "Tick").after("A", 3, "Go").after("B", 4, "Back", name="back")
    t = MachineTable(s.compile(), 1000)
    for _ in range(1000):
        t.open()
    out = np.zeros(4096, FIRED_DTYPE)
    clock = [0]
    advance = t.advance

    def loop() -> int:
        fired = 0
        for _ in range(20):
            clock[0] += 10
            fired += advance(clock[0], out=out)
        return fired

    assert loop() > 20_000  # the loop fires
    assert _blocks_after(loop) - _blocks_after(lambda: 0) <= 0
    tracemalloc.start()
    try:
        loop()
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        loop()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - current < 1024  # 40,000 fires: no per-fire (or per-call array) temporaries


def test_out_is_held_only_during_the_call() -> None:
    """``advance`` holds ``out``'s buffer while it writes (the array cannot move meanwhile) and
    lets go after, also when it refuses the call: a buffer left held keeps a reference."""
    t = _table()
    out = np.zeros(4, FIRED_DTYPE)
    refs = sys.getrefcount(out)
    assert t.advance(20, out=out) == 1
    assert sys.getrefcount(out) == refs
    with pytest.raises(ValueError, match=r"now_ns 19 is before the table's clock 20"):
        t.advance(19, out=out)
    assert sys.getrefcount(out) == refs
    out.resize(8)  # refcheck on: no export or reference left behind
    assert out.shape == (8,)
