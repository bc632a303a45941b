"""One state codec and one event codec per machine, used by every engine entry point: a value
from another machine's enum, or of the other kind, is a TypeError everywhere."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamhsm import (
    Event,
    LeaseEvent,
    LeaseState,
    MachineDefinitionError,
    MachineSpec,
    ReferenceMachine,
    State,
    StreamLifecycle,
    StreamTable,
    stream_machine,
    stream_spec,
)
from streamhsm._codec import MachineCodec
from streamhsm.machine import upper_to_camel


def _table() -> StreamTable:
    t = StreamTable(4)
    t.dispatch(t.open(), Event.STREAM_PROVISIONED)
    return t


STATE_ENTRY_POINTS: dict[str, Callable[[Any], object]] = {
    "MachineTable.count": lambda v: _table().count(v),
    "MachineTable.slots_in": lambda v: _table().slots_in(v),
    "MachineTable.is_in": lambda v: _table().is_in(0, v),
    "MachineInstance.is_in": lambda v: StreamLifecycle().is_in(v),
    "CompiledMachine.state_code": lambda v: stream_machine().state_code(v),
    "ReferenceMachine.in_state":
        lambda v: ReferenceMachine(stream_spec(), state_enum=State).in_state(v),
}
EVENT_ENTRY_POINTS: dict[str, Callable[[Any], object]] = {
    "MachineTable.dispatch": lambda v: _table().dispatch(0, v),
    "MachineTable.broadcast": lambda v: _table().broadcast(v),
    "MachineInstance.dispatch": lambda v: StreamLifecycle().dispatch(v),
    "CompiledMachine.event_code": lambda v: stream_machine().event_code(v),
    "ReferenceMachine.dispatch": lambda v: ReferenceMachine(stream_spec()).dispatch(v),
}


@pytest.mark.parametrize("entry", sorted(STATE_ENTRY_POINTS))
@pytest.mark.parametrize("bad", [Event.STREAM_PROVISIONED, LeaseState.ACTIVE, LeaseEvent(0)],
                         ids=["other kind", "other machine", "other machine's event"])
def test_state_entry_points_refuse_foreign_enums(entry: str, bad: enum.IntEnum) -> None:
    with pytest.raises(TypeError,
                       match=rf"state {bad!r} belongs to {type(bad).__name__}, not to the states"):
        STATE_ENTRY_POINTS[entry](bad)


@pytest.mark.parametrize("entry", sorted(EVENT_ENTRY_POINTS))
@pytest.mark.parametrize("bad", [State.ACTIVE, LeaseEvent(0), LeaseState.ACTIVE],
                         ids=["other kind", "other machine", "other machine's state"])
def test_event_entry_points_refuse_foreign_enums(entry: str, bad: enum.IntEnum) -> None:
    with pytest.raises(TypeError,
                       match=rf"event {bad!r} belongs to {type(bad).__name__}, not to the events"):
        EVENT_ENTRY_POINTS[entry](bad)


@pytest.mark.parametrize("entry", sorted(STATE_ENTRY_POINTS))
def test_state_entry_points_accept_codes_members_and_names(entry: str) -> None:
    fn = STATE_ENTRY_POINTS[entry]
    results = {repr(fn(v)) for v in (State.LIVE, int(State.LIVE), np.int64(State.LIVE),
                                     np.uint8(State.LIVE), "Live")}
    assert len(results) == 1
    for bad, exc, match in ((99, ValueError, "unknown state code 99"),
                            (-1, ValueError, "unknown state code -1"),
                            (2**70, ValueError, f"unknown state code {2**70}"),
                            ("Nowhere", ValueError, "unknown state name 'Nowhere'"),
                            (True, TypeError, "state must be an int code"),
                            (1.0, TypeError, "state must be an int code")):
        with pytest.raises(exc, match=match):
            fn(bad)


@pytest.mark.parametrize("entry", sorted(EVENT_ENTRY_POINTS))
def test_event_entry_points_accept_codes_members_and_names(entry: str) -> None:
    fn = EVENT_ENTRY_POINTS[entry]
    results = {repr(fn(v)) for v in (Event.CLOSE, int(Event.CLOSE), np.int64(Event.CLOSE),
                                     np.uint8(Event.CLOSE), "Close")}
    assert len(results) == 1
    for bad, exc, match in ((10, ValueError, "unknown event code 10"),
                            (-1, ValueError, "unknown event code -1"),
                            ("Closing", ValueError, "unknown event name 'Closing'"),
                            (False, TypeError, "event must be an int code"),
                            (None, TypeError, "event must be an int code")):
        with pytest.raises(exc, match=match):
            fn(bad)


def test_one_codec_per_machine_is_shared() -> None:
    m = stream_machine()
    assert isinstance(m.codec, MachineCodec)
    assert m.codec.state_enum is State and m.codec.event_enum is Event
    assert m.codec.n_states == len(State) and m.codec.n_events == len(Event)


def test_spec_takes_the_event_enum_and_derives_the_names() -> None:
    spec = stream_spec()
    assert spec.event_enum is Event
    assert spec.events[Event.STREAM_PROVISIONED] == "StreamProvisioned"
    assert spec.events == tuple(upper_to_camel(e.name) for e in Event)
    assert stream_machine().Event is Event and stream_machine().event_names == spec.events


def test_spec_event_enum_must_be_dense_and_camel_case() -> None:
    class Gappy(enum.IntEnum):
        GO = 0
        STOP = 2

    class Digits(enum.IntEnum):
        GO = 0
        GO_2 = 1  # "Go2" would map back to GO2

    with pytest.raises(MachineDefinitionError, match=r"must have the codes 0..1, got \[0, 2\]"):
        MachineSpec("m", Gappy, initial="A")
    with pytest.raises(MachineDefinitionError, match="Digits.GO_2 has no CamelCase name"):
        MachineSpec("m", Digits, initial="A")
    # the old form, a list of CamelCase names, still works
    assert MachineSpec("m", ["Go", "Stop"], initial="A").events == ("Go", "Stop")
