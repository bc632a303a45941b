"""The stream lifecycle machine, cell by cell, against DESIGN section 2 and the reference, on every
implementation (reference interpreter, MachineInstance, MachineTable slot, StreamLifecycle)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamhsm import Event, ReferenceMachine, State, StreamLifecycle, stream_machine, stream_spec

E = Event
S = State
LEASE = [E.PRODUCER_ATTACHED, E.CONSUMER_ATTACHED, E.PRODUCER_DETACHED, E.CONSUMER_DETACHED,
         E.EPOCH_BUMPED]
CLOSERS = [E.DRIVER_SHUTDOWN, E.STREAM_IDLE, E.CLOSE]


def design_table(
        drain_on_producer_loss: bool) -> dict[tuple[State, Event], tuple[State, State | None]]:
    """(leaf, event) -> (next leaf, handling state or None), transcribed from DESIGN section 2."""
    t: dict[tuple[State, Event], tuple[State, State | None]] = {}
    for leaf in (S.INIT, S.ACTIVE, S.DRAINING, S.CLOSED):
        for ev in E:
            t[leaf, ev] = (leaf, None)  # Root: unhandled, state unchanged
    t[S.INIT, E.STREAM_PROVISIONED] = (S.ACTIVE, S.INIT)
    for ev in LEASE:
        t[S.ACTIVE, ev] = (S.ACTIVE, S.ACTIVE)
    for ev in (E.PRODUCER_DETACHED, E.CONSUMER_DETACHED, E.EPOCH_BUMPED, E.DRIVER_DRAINING):
        t[S.DRAINING, ev] = (S.DRAINING, S.DRAINING)
    for leaf in (S.INIT, S.ACTIVE):
        t[leaf, E.DRIVER_DRAINING] = (S.DRAINING, S.LIVE)
    for leaf in (S.INIT, S.ACTIVE, S.DRAINING):
        for ev in CLOSERS:
            t[leaf, ev] = (S.CLOSED, S.LIVE)
    t[S.CLOSED, E.CLOSE] = (S.CLOSED, S.CLOSED)
    if drain_on_producer_loss:
        t[S.ACTIVE, E.PRODUCER_DETACHED] = (S.DRAINING, S.ACTIVE)
        t[S.DRAINING, E.PRODUCER_ATTACHED] = (S.ACTIVE, S.DRAINING)
    return t


#: events leading from Init to each leaf
PATHS = {S.INIT: [], S.ACTIVE: [E.STREAM_PROVISIONED],
         S.DRAINING: [E.STREAM_PROVISIONED, E.DRIVER_DRAINING], S.CLOSED: [E.CLOSE]}
NAME = {s: stream_machine().state_names[s] for s in S}


def _drive_to(make: Callable[..., Any], leaf: State, policy: bool) -> Any:
    """A machine made by ``make`` (``any_stream_machine``) for ``policy``, driven to ``leaf``."""
    m = make(policy)
    for ev in PATHS[leaf]:
        assert m.dispatch(ev)
    assert m.state == NAME[leaf]
    return m


CELLS = [(p, leaf, ev) for p in (False, True) for leaf in (S.INIT, S.ACTIVE, S.DRAINING, S.CLOSED)
         for ev in E]


@pytest.mark.parametrize(("policy", "leaf", "event"), CELLS,
                         ids=[f"{'drain' if p else 'default'}-{leaf.name}-{e.name}"
                              for p, leaf, e in CELLS])
def test_every_cell_matches_design(policy: bool, leaf: State, event: Event) -> None:
    want_next, want_handler = design_table(policy)[leaf, event]
    machine = stream_machine(policy)
    assert machine.next_state[leaf, event] == want_next
    assert machine.handled[leaf, event] == (want_handler is not None)
    assert machine.handler[leaf, event] == (-1 if want_handler is None else want_handler)


@pytest.mark.parametrize(("policy", "leaf", "event"), CELLS,
                         ids=[f"{'drain' if p else 'default'}-{leaf.name}-{e.name}"
                              for p, leaf, e in CELLS])
def test_every_cell_on_every_implementation(any_stream_machine: Callable[..., Any], policy: bool,
                                            leaf: State, event: Event) -> None:
    want_next, want_handler = design_table(policy)[leaf, event]
    m = _drive_to(any_stream_machine, leaf, policy)
    before = m.unhandled
    assert m.dispatch(event) is (want_handler is not None)
    assert m.state == NAME[want_next]
    assert m.unhandled == before + (want_handler is None)


@pytest.mark.smoke
@pytest.mark.parametrize("policy", [False, True])
def test_compiled_equals_reference_interpreter(policy: bool) -> None:
    machine = stream_machine(policy)
    spec = stream_spec(policy)
    names = machine.state_names
    for leaf_name in ("Init", "Active", "Draining", "Closed"):
        for ev_name in machine.event_names:
            ref = ReferenceMachine(spec)
            ref.current = leaf_name
            step = ref.dispatch(ev_name)
            leaf = names.index(leaf_name)
            assert names[machine.next_state[leaf, machine.event_code(ev_name)]] == ref.current
            assert machine.exits(leaf, ev_name) == tuple(names.index(s) for s in step.exits)
            assert machine.entries(leaf, ev_name) == tuple(names.index(s) for s in step.entries)


def test_exit_and_entry_paths_of_the_plan() -> None:
    m = stream_machine()
    assert m.exits(S.INIT, E.STREAM_PROVISIONED) == (S.INIT,)
    assert m.entries(S.INIT, E.STREAM_PROVISIONED) == (S.ACTIVE,)
    assert m.exits(S.ACTIVE, E.DRIVER_DRAINING) == (S.ACTIVE,)  # Live stays active
    assert m.entries(S.ACTIVE, E.DRIVER_DRAINING) == (S.DRAINING,)
    assert m.exits(S.DRAINING, E.STREAM_IDLE) == (S.DRAINING, S.LIVE)
    assert m.entries(S.DRAINING, E.STREAM_IDLE) == (S.CLOSED,)
    assert m.exits(S.ACTIVE, E.EPOCH_BUMPED) == ()


def test_plan_validation_sequence(any_stream_machine: Callable[..., Any]) -> None:
    """Init -> Active, Active -> Draining -> Closed."""
    m = any_stream_machine()
    assert m.state == "Init" and m.is_in(S.LIVE) and m.is_in(S.ROOT) and m.is_in("Live")
    assert m.dispatch("StreamProvisioned") and m.state == "Active"
    assert m.dispatch(E.PRODUCER_ATTACHED) and m.state == "Active"
    assert m.dispatch(int(E.DRIVER_DRAINING)) and m.state == "Draining"
    assert m.dispatch("ConsumerDetached") and m.state == "Draining"
    assert m.unhandled == 0  # lease ends during a drain are not "unhandled"
    assert m.dispatch(E.STREAM_IDLE) and m.state == "Closed"
    assert not m.is_in(S.LIVE) and m.is_in(S.CLOSED)
    assert not m.dispatch(E.STREAM_PROVISIONED)
    assert m.unhandled == 1 and m.state == "Closed"


def test_lifecycle_current_is_a_state_member() -> None:
    m = StreamLifecycle()
    assert m.current is S.INIT
    assert m.dispatch(E.STREAM_PROVISIONED) and m.current is S.ACTIVE


@pytest.mark.parametrize("form", [E.STREAM_PROVISIONED, 0, "StreamProvisioned", np.uint8(0)],
                         ids=["member", "int", "name", "numpy"])
def test_event_forms_are_equivalent(any_stream_machine: Callable[..., Any], form: object) -> None:
    m = any_stream_machine()
    assert m.dispatch(form)
    assert m.state == "Active"


@pytest.mark.parametrize(("bad", "exc", "match"), [
    (10, ValueError, r"unknown event code 10 for machine 'stream' \(valid: 0\.\.9\)"),
    (-1, ValueError, "unknown event code -1"),
    (2**70, ValueError, f"unknown event code {2**70}"),
    ("STREAM_PROVISIONED", ValueError, "unknown event name 'STREAM_PROVISIONED'"),
    ("", ValueError, "unknown event name ''"),
    ("x", ValueError, "unknown event name 'x'"),
    (1.0, TypeError, "got float 1.0"),
    (1.5, TypeError, "got float 1.5"),
    (float("nan"), TypeError, "got float nan"),
    (True, TypeError, "got bool True"),
    (None, TypeError, "got NoneType None"),
    (State.ACTIVE, TypeError, "belongs to State"),
])
def test_bad_events_raise_and_change_nothing(any_stream_machine: Callable[..., Any], bad: object,
                                             exc: type, match: str) -> None:
    m = _drive_to(any_stream_machine, S.ACTIVE, False)
    with pytest.raises(exc, match=match):
        m.dispatch(bad)
    assert m.state == "Active" and m.unhandled == 0


def test_unknown_state_names_raise(any_stream_machine: Callable[..., Any]) -> None:
    m = any_stream_machine()
    with pytest.raises(ValueError, match="unknown state name 'x'"):
        m.is_in("x")
    assert m.state == "Init"


def test_policy_flag_and_type() -> None:
    assert StreamLifecycle(drain_on_producer_loss=True).drain_on_producer_loss
    assert not StreamLifecycle().drain_on_producer_loss
    with pytest.raises(TypeError, match="drain_on_producer_loss must be a bool, got str"):
        StreamLifecycle(drain_on_producer_loss="yes")  # type: ignore[arg-type]


def test_instances_are_independent(any_stream_machine: Callable[..., Any]) -> None:
    a, b = any_stream_machine(), any_stream_machine()
    a.dispatch(E.STREAM_PROVISIONED)
    b.dispatch(E.CLOSE)
    assert (a.state, b.state) == ("Active", "Closed")


def test_every_state_has_an_enum_member_with_its_code() -> None:
    m = stream_machine()
    for code, name in enumerate(m.state_names):
        assert State[name.upper()] == code
    for code, name in enumerate(m.event_names):
        assert Event(code).name.replace("_", "").lower() == name.lower()


def test_unknown_to_root_is_the_only_unhandled_path() -> None:
    """Every unhandled cell is one no state declares, and no declared cell is unhandled."""
    spec = stream_spec()
    m = stream_machine()
    declared = set(spec.handlers)
    for leaf, ev in itertools.product((S.INIT, S.ACTIVE, S.DRAINING, S.CLOSED), E):
        chain = [m.state_names[leaf]]
        while chain[-1] != "Root":
            chain.append(m.state_names[m.parent[m.state_names.index(chain[-1])]])
        has = any((st, m.event_names[ev]) in declared for st in chain)
        assert bool(m.handled[leaf, ev]) == has


def test_the_drain_policy_as_a_flag_equals_both_table_variants() -> None:
    """docs/design.md (flags): the stream machine with ``drain`` as a per-stream flag is the
    default policy while the flag is clear and drain_on_producer_loss while it is set, cell by
    cell; so one table could mix policies (the benchmarks measure it against the variant)."""
    from streamhsm.tools.bench import drain_flag_stream_machine

    flagged = drain_flag_stream_machine()
    assert flagged.flag_names == ("drain",) and flagged.next_state.shape[0] == 2
    for mask, drain in ((0, False), (1, True)):
        plain = stream_machine(drain)
        for name in ("next_state", "handled", "handler", "exit_path", "entry_path"):
            np.testing.assert_array_equal(getattr(flagged, name)[mask], getattr(plain, name),
                                          err_msg=f"{name} with drain={drain}")


def test_the_drain_policy_is_asked_for_one_way() -> None:
    with pytest.raises(ValueError, match="drain_on_producer_loss and drain_flag"):
        stream_spec(True, drain_flag="drain")
    assert stream_spec(drain_flag="drain").compile().name == "stream[drain flag]"
