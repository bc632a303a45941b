"""``MachineInstance`` of a machine with timers: its own clock (``now_ns``, ``advance``,
``deadlines``, ``skipped_periods``), checked against one slot of a ``MachineTable`` (the same
kernels on a one-slot core) and on the sentences of the contract it runs by itself; bad input;
instances of timer-free machines unchanged (size, no clock)."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest

from streamhsm import (
    FIRED_DTYPE,
    NEVER,
    MachineInstance,
    MachineSpec,
    MachineTable,
    StreamLifecycle,
)

S = 1_000_000_000
EVENTS = ["Go", "Self", "Kick", "Tick", "ToB", "Step", "Back", "Beat", "Nothing"]


def timed_spec() -> MachineSpec:
    """Timers at three levels (Root, the composite A, the leaves A1 / A2 / B), one-shot and
    periodic, restart handlers (one guarded by a flag), a self-transition on the composite."""
    spec = MachineSpec("timed", EVENTS, initial="A")
    spec.flag("hold")
    spec.state("A", initial="A1").state("A1", "A").state("A2", "A").state("B")
    spec.on("A", "Go", "B").on("B", "Go", "A").on("A", "Self", "A")
    spec.on("A1", "Step", "A2").on("A", "ToB", "B").on("B", "Back", "A")
    spec.on("A1", "Kick", restart="A1.Step")
    spec.on("A2", "Tick", guard="hold", restart="A.ToB").on("A2", "Tick", guard="!hold")
    spec.on("Root", "Beat")
    spec.every("Root", 7, "Beat")
    spec.after("A", 10, "ToB")
    spec.after("A1", 3, "Step")
    spec.every("A2", 4, "Tick")
    spec.after("B", 5, "Back")
    return spec


@pytest.fixture(scope="module", name="machine")
def machine_fixture():
    return timed_spec().compile()


def _plain_machine():
    spec = MachineSpec("plain", ["Go"], initial="A")
    spec.state("A").state("B")
    spec.on("A", "Go", "B").on("B", "Go", "A")
    return spec.compile()


def _deadlines(obj, machine, slot=None):
    return [int(obj.deadlines(n)) if slot is None else int(obj.deadlines(n)[slot])
            for n in machine.timers.names]


# ---------------------------------------------------------------- the instance's own clock

def test_the_initial_states_arm_at_construction_from_now_ns(machine) -> None:
    inst = MachineInstance(machine, now_ns=100)
    assert inst.now_ns == 100
    assert _deadlines(inst, machine) == [107, 110, 103, NEVER, NEVER]  # Root, A, A1 armed
    assert MachineInstance(machine).now_ns == 0
    assert MachineInstance(machine).deadlines("A1.Step") == 3
    assert MachineInstance(machine, now_ns=np.int64(7)).deadlines("A1.Step") == 10
    assert inst.skipped_periods == (0, 0, 0, 0, 0)


def test_dispatch_arms_and_cancels_at_the_instance_clock(machine) -> None:
    inst = MachineInstance(machine)
    assert inst.advance(2) == 0  # nothing due: the clock moves, nothing fires
    assert inst.now_ns == 2
    assert inst.dispatch("Go") is True  # A -> B: A and A1 cancelled, B armed from the clock
    assert machine.state_names[inst.current] == "B"
    assert _deadlines(inst, machine) == [7, NEVER, NEVER, NEVER, 7]
    inst.advance(4)
    assert inst.dispatch("Go") is True  # back: A and A1 armed afresh from 4
    assert _deadlines(inst, machine) == [7, 14, 7, NEVER, NEVER]
    inst.dispatch("Kick")  # restart without a transition
    assert _deadlines(inst, machine) == [7, 14, 7, NEVER, NEVER]
    inst.advance(5)
    inst.dispatch("Kick")
    assert inst.deadlines("A1.Step") == 8
    inst.dispatch("Self")  # exits and re-enters A: every timer of A armed afresh
    assert _deadlines(inst, machine) == [7, 15, 8, NEVER, NEVER]


def test_advance_fires_in_deadline_order_with_the_clock_at_each_deadline(machine) -> None:
    inst = MachineInstance(machine)
    out = np.zeros(8, FIRED_DTYPE)
    # due by 13: A1.Step at 3 (-> A2, arming A2.Tick at 3 + 4 = 7), then at 7 a tie of
    # Root.Beat (declared first) and A2.Tick (next phase 11), then A.ToB at 10 (-> B: Tick
    # cancelled, B.Back armed at 15); Beat's next phase 14 is not due
    assert inst.advance(13, out) == 4
    names = machine.timers.names
    got = [(names[r["timer"]], int(r["time_ns"]), int(r["slot"]),
            EVENTS[r["event"]]) for r in out[:4]]
    assert got == [("A1.Step", 3, 0, "Step"), ("Root.Beat", 7, 0, "Beat"),
                   ("A2.Tick", 7, 0, "Tick"), ("A.ToB", 10, 0, "ToB")]
    assert machine.state_names[inst.current] == "B"
    assert inst.now_ns == 13
    assert _deadlines(inst, machine) == [14, NEVER, NEVER, NEVER, 15]
    assert out[4:].tolist() == np.zeros(4, FIRED_DTYPE).tolist()  # only what fired is written


def test_periodic_catch_up_is_counted_not_replayed(machine) -> None:
    inst = MachineInstance(machine)
    inst.dispatch("Go")  # B: only Root.Beat (every 7) and B.Back (5, -> A) run
    assert inst.advance(1000) > 2  # B.Back at 5, then A's and its children's timers in turn
    assert inst.advance(1000) == 0  # nothing is due twice
    # Beat fired once, at 7: the 141 periods up to 1000 skipped, its phase kept (7 * 143)
    assert inst.deadlines("Root.Beat") == 1001
    assert inst.skipped_periods[machine.timers.names.index("Root.Beat")] == 141


def test_out_records_the_first_len_out_and_the_count_goes_on(machine) -> None:
    a, b = MachineInstance(machine), MachineInstance(machine)
    short, full = np.zeros(1, FIRED_DTYPE), np.zeros(16, FIRED_DTYPE)
    n = a.advance(13, short)
    assert n == b.advance(13, full) == 4
    assert short.tolist() == full[:1].tolist()
    assert b.advance(14, np.zeros(0, FIRED_DTYPE)) == 1  # an empty out is allowed


def test_fired_transitions_are_counted_and_unhandled_timers_too(machine) -> None:
    inst = MachineInstance(machine, count_transitions=True)
    inst.advance(3)  # A1.Step: A1 -> A2
    counts = inst.transition_counts
    assert counts is not None
    assert counts[machine.codec.state_codes["A1"], EVENTS.index("Step")] == 1
    spec = MachineSpec("deaf", ["Ping"], initial="A")
    spec.state("A").every("A", 2, "Ping")  # nobody handles Ping
    deaf = MachineInstance(spec.compile())
    assert deaf.advance(9) == 1
    assert deaf.unhandled == 1
    assert deaf.skipped_periods == (3,)


def test_instances_keep_their_own_clocks(machine) -> None:
    a, b = MachineInstance(machine), MachineInstance(machine, now_ns=50)
    a.advance(3)
    assert (a.now_ns, b.now_ns) == (3, 50)
    assert machine.state_names[a.current] == "A2"
    assert machine.state_names[b.current] == "A1"
    assert b.deadlines("A1.Step") == 53


# ---------------------------------------------------------------- against a table slot

def _run_both(machine, seed: int, steps: int = 300) -> None:
    rng = random.Random(seed)
    start = rng.choice([0, 5, 10**15])
    inst = MachineInstance(machine, count_transitions=True, now_ns=start)
    table = MachineTable(machine, 3, now_ns=start)
    table.open()
    slot = table.open()  # the middle slot, neighbours open too
    table.open()
    out_i, out_t = np.zeros(4, FIRED_DTYPE), np.zeros(16, FIRED_DTYPE)
    for _ in range(steps):
        op = rng.random()
        if op < 0.45:
            e = rng.choice(EVENTS)
            assert inst.dispatch(e) == table.dispatch(slot, e)
        elif op < 0.55:
            value = rng.random() < 0.5
            inst.set_flag("hold", value)
            table.set_flag(slot, "hold", value)
        else:
            now = table.now_ns + rng.choice([0, 1, 2, 3, 5, 9, 40, 300])
            for other in (0, 2):  # keep the neighbours out of the records: release, re-open
                table.release(other)
            n_i = inst.advance(now, out_i)
            n_t = table.advance(now, out_t)
            assert n_i == n_t
            k = min(n_i, len(out_i))
            assert (out_i["slot"][:k] == 0).all() and (out_t["slot"][:k] == slot).all()
            for field in ("event", "time_ns", "timer"):
                assert out_i[field][:k].tolist() == out_t[field][:k].tolist()
            assert table.open() == 2 and table.open() == 0
        assert inst.current == table.state(slot)
        assert inst.now_ns == table.now_ns
        assert _deadlines(inst, machine) == _deadlines(table, machine, slot)
        assert inst.unhandled == table.unhandled[slot]
        assert inst.skipped_periods == table.skipped_periods
    assert inst.transition_counts is not None
    assert inst.transition_counts.tolist() == table.transition_counts.tolist()


@pytest.mark.parametrize("seed", range(12))
def test_an_instance_runs_as_one_slot_of_a_table(machine, seed: int) -> None:
    _run_both(machine, seed)


# ---------------------------------------------------------------- bad input

def test_bad_advance_changes_nothing(machine) -> None:
    inst = MachineInstance(machine, now_ns=10)
    before = (inst.now_ns, _deadlines(inst, machine), inst.current, inst.skipped_periods)
    with pytest.raises(ValueError, match="now_ns 9 is before the instance's clock 10"):
        inst.advance(9)
    with pytest.raises(TypeError, match="now_ns must be an int number of nanoseconds, got float"):
        inst.advance(20.0)
    with pytest.raises(TypeError, match="got bool True"):
        inst.advance(True)
    with pytest.raises(ValueError, match=r"now_ns must be 0\.\.9223372036854775797"):
        inst.advance(NEVER)
    with pytest.raises(ValueError, match=r"now_ns must be 0\.\."):
        inst.advance(-1)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray .* of FIRED_DTYPE or "
                                        "None, got list"):
        inst.advance(20, [])
    with pytest.raises(ValueError, match="out must be a 1-D array of streamhsm.FIRED_DTYPE"):
        inst.advance(20, np.zeros(4, np.int64))
    ro = np.zeros(4, FIRED_DTYPE)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable, got a read-only array of 4"):
        inst.advance(20, ro)
    assert (inst.now_ns, _deadlines(inst, machine), inst.current,
            inst.skipped_periods) == before


def test_bad_construction_and_names(machine) -> None:
    with pytest.raises(TypeError, match="now_ns must be an int number of nanoseconds, got str"):
        MachineInstance(machine, now_ns="0")
    with pytest.raises(ValueError, match="now_ns must be 0..9223372036854775797"):
        MachineInstance(machine, now_ns=NEVER - 9)
    with pytest.raises(TypeError, match="count_transitions must be a bool, got int 1"):
        MachineInstance(machine, count_transitions=1)
    inst = MachineInstance(machine)
    with pytest.raises(ValueError, match=r"machine 'timed' has no timer 'A\.Nope' \(timers:"):
        inst.deadlines("A.Nope")
    with pytest.raises(TypeError, match="timer name must be a str, got int 0"):
        inst.deadlines(0)
    with pytest.raises(RuntimeError, match="not initialised"):
        MachineInstance.__new__(MachineInstance).advance(1)
    with pytest.raises(RuntimeError, match="not initialised"):
        MachineInstance.__new__(MachineInstance).deadlines("A.ToB")
    assert MachineInstance.__new__(MachineInstance).now_ns is None
    assert MachineInstance.__new__(MachineInstance).skipped_periods == ()


# ---------------------------------------------------------------- machines without timers

def test_a_timer_free_instance_has_no_clock() -> None:
    plain = _plain_machine()
    inst = MachineInstance(plain)
    assert inst.now_ns is None
    assert inst.skipped_periods == ()
    with pytest.raises(ValueError, match="machine 'plain' has no timers"):
        inst.advance(1)
    with pytest.raises(ValueError, match="machine 'plain' has no timers"):
        inst.deadlines("A.Go")
    with pytest.raises(ValueError, match="machine 'plain' has no timers"):
        MachineInstance(plain, now_ns=5)
    assert MachineInstance(plain, now_ns=0).dispatch("Go") is True
    assert MachineInstance(plain, now_ns=np.int64(0)).now_ns is None  # as MachineTable
    with pytest.raises(ValueError, match="machine 'plain' has no timers"):
        MachineInstance(plain, now_ns=0.5)


def test_stream_lifecycle_is_unaffected() -> None:
    life = StreamLifecycle()
    assert life.now_ns is None
    assert life.skipped_periods == ()
    with pytest.raises(ValueError, match="has no timers"):
        life.advance(1)
    assert sys.getsizeof(life) == sys.getsizeof(MachineInstance(_plain_machine()))


@pytest.mark.skipif(sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11),
                    reason="the size is CPython 3.11's")
def test_instances_stay_56_bytes(machine) -> None:
    assert sys.getsizeof(MachineInstance(_plain_machine())) == 56
    assert sys.getsizeof(MachineInstance(machine)) == 56  # the clock lives beside it
