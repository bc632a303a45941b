"""The light StreamLifecycle (issue 11, target 1): a few bytes per instance, per-instance
transition counts only when asked for, behaviour unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from streamhsm import Event, MachineInstance, State, StreamLifecycle, stream_machine
from streamhsm.tools.bench import lifecycle_bytes

N = 20_000


@pytest.mark.usefixtures("frozen_heap")
@pytest.mark.parametrize("policy", [False, True])
def test_instance_costs_at_most_64_bytes(policy: bool) -> None:
    assert lifecycle_bytes(N, lambda: StreamLifecycle(policy)) <= 64


@pytest.mark.usefixtures("frozen_heap")
def test_machine_instance_costs_at_most_64_bytes() -> None:
    m = stream_machine()
    assert lifecycle_bytes(N, lambda: MachineInstance(m)) <= 64


@pytest.mark.smoke
def test_instances_share_the_machine_tables_but_not_their_state() -> None:
    a, b = StreamLifecycle(), StreamLifecycle()
    a.dispatch(Event.STREAM_PROVISIONED)
    b.dispatch(Event.CLOSE)
    b.dispatch(Event.STREAM_PROVISIONED)  # unhandled in Closed
    assert (a.current, a.unhandled) == (State.ACTIVE, 0)
    assert (b.current, b.unhandled) == (State.CLOSED, 1)
    assert a.is_in(State.LIVE) and not b.is_in(State.LIVE) and b.is_in(State.ROOT)


def test_transition_counts_are_opt_in_and_per_instance() -> None:
    plain = StreamLifecycle(True)
    assert plain.transition_counts is None
    a = StreamLifecycle(True, count_transitions=True)
    b = StreamLifecycle(True, count_transitions=True)
    for ev in (Event.STREAM_PROVISIONED, Event.PRODUCER_DETACHED, Event.PRODUCER_ATTACHED,
               Event.PRODUCER_DETACHED, Event.EPOCH_BUMPED, Event.CONSUMER_ATTACHED):
        a.dispatch(ev)
        plain.dispatch(ev)
    counts = a.transition_counts
    assert counts is not None and counts.shape == (6, 10) and not counts.flags.writeable
    expected = np.zeros((6, 10), np.int64)
    expected[State.INIT, Event.STREAM_PROVISIONED] = 1
    expected[State.ACTIVE, Event.PRODUCER_DETACHED] = 2
    expected[State.DRAINING, Event.PRODUCER_ATTACHED] = 1
    assert np.array_equal(counts, expected)
    assert b.transition_counts is not None and not b.transition_counts.any()
    assert (a.current, a.unhandled) == (plain.current, plain.unhandled) == (State.DRAINING, 1)


def test_count_transitions_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="count_transitions must be a bool, got int 1"):
        StreamLifecycle(count_transitions=1)  # type: ignore[arg-type]


def test_uninitialised_instance_raises() -> None:
    m = MachineInstance.__new__(MachineInstance)
    assert m.machine is None
    with pytest.raises(RuntimeError, match="not initialised"):
        m.dispatch(0)
    with pytest.raises(RuntimeError, match="not initialised"):
        _ = m.current
    with pytest.raises(RuntimeError, match="called twice"):
        StreamLifecycle()._bind(stream_machine(), False)


def test_lifecycle_has_no_instance_dict() -> None:
    with pytest.raises(AttributeError):
        StreamLifecycle().extra = 1  # type: ignore[attr-defined]


def test_construction_fast_path_skips_no_check() -> None:
    """Building an instance of the machine built last takes a short path (no checks repeated);
    every argument it does not cover still gets its error, and each policy its own machine."""
    m = stream_machine()
    MachineInstance(m)  # the fast path is armed for m
    with pytest.raises(ValueError, match="machine 'stream' has no timers"):
        MachineInstance(m, now_ns=5)
    with pytest.raises(ValueError, match="machine 'stream' has no timers"):
        MachineInstance(m, now_ns=0.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="count_transitions must be a bool, got int 0"):
        MachineInstance(m, count_transitions=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="machine must be a CompiledMachine, got MachineSpec"):
        MachineInstance(m.spec)  # type: ignore[arg-type]
    counted = MachineInstance(m, count_transitions=True)
    assert counted.transition_counts is not None
    assert MachineInstance(m).transition_counts is None
    # the two policies alternate, each time with its own machine, from Init
    for policy in (False, True, True, False, True):
        life = StreamLifecycle(policy)
        assert life.drain_on_producer_loss is policy
        assert (life.current, life.unhandled) == (State.INIT, 0)
        life.dispatch(Event.STREAM_PROVISIONED)
        life.dispatch(Event.PRODUCER_DETACHED)
        assert life.current == (State.DRAINING if policy else State.ACTIVE)
