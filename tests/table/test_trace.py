"""The trace ring: off by default, allocated once when enabled, the last N transitions in order
(wrap-around included), with the handling state from the compiled tables."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

from streamhsm import Event, State, StreamTable


def table(n: int = 8) -> StreamTable:
    t = StreamTable(n)
    for _ in range(n):
        t.open()
    return t


def test_off_by_default() -> None:
    t = table()
    assert not t.tracing and len(t.trace()) == 0
    t.broadcast(Event.STREAM_PROVISIONED)
    assert len(t.trace()) == 0


def test_records_only_transitions_with_their_handler() -> None:
    t = table(4)
    t.enable_trace(16)
    t.dispatch(0, Event.STREAM_PROVISIONED)          # Init -> Active, by Init
    t.dispatch(0, Event.EPOCH_BUMPED)                # handled in place: not a transition
    t.dispatch(0, Event.STREAM_PROVISIONED)          # unhandled: not a transition
    t.dispatch_many(np.array([1, 0], np.int64),
                    np.array([Event.CLOSE, Event.DRIVER_DRAINING], np.uint8))
    tr = t.trace()
    assert tr["seq"].tolist() == [0, 1, 2]
    assert tr["slot"].tolist() == [0, 1, 0]
    assert tr["event"].tolist() == [Event.STREAM_PROVISIONED, Event.CLOSE, Event.DRIVER_DRAINING]
    assert tr["from_state"].tolist() == [State.INIT, State.INIT, State.ACTIVE]
    assert tr["to_state"].tolist() == [State.ACTIVE, State.CLOSED, State.DRAINING]
    assert tr["handled_by"].tolist() == [State.INIT, State.LIVE, State.LIVE]


def test_wrap_around_keeps_the_last_n_in_order() -> None:
    t = table(8)
    t.enable_trace(5)
    t.broadcast(Event.STREAM_PROVISIONED)  # 8 transitions, slots 0..7
    t.broadcast(Event.DRIVER_DRAINING)     # 8 more
    tr = t.trace()
    assert tr["seq"].tolist() == list(range(11, 16))
    assert tr["slot"].tolist() == [3, 4, 5, 6, 7]
    assert set(tr["to_state"].tolist()) == {State.DRAINING}
    t.enable_trace(2)  # a fresh ring
    assert len(t.trace()) == 0
    t.disable_trace()
    t.broadcast(Event.CLOSE)
    assert not t.tracing and len(t.trace()) == 0


@pytest.mark.usefixtures("frozen_heap")
def test_recording_allocates_nothing() -> None:
    t = table(64)
    t.enable_trace(1000)
    slots = np.repeat(np.arange(64, dtype=np.int64), 2)
    events = np.tile(np.array([Event.STREAM_PROVISIONED, Event.CLOSE], np.uint8), 64)

    def run() -> None:
        for _ in range(200):
            t.dispatch_many(slots, events)
            t.broadcast(Event.CLOSE)

    run()
    gc.collect()
    before = sys.getallocatedblocks()
    run()
    gc.collect()
    assert sys.getallocatedblocks() - before <= 2


@pytest.mark.parametrize(("size", "exc"),
                         [(0, ValueError), (-1, ValueError), (1.5, TypeError), (2**31, ValueError)])
def test_bad_sizes(size: object, exc: type) -> None:
    with pytest.raises(exc, match="size"):
        table().enable_trace(size)


def test_trace_codes_name_their_members() -> None:
    """The documented way from the trace's codes to enum members and names."""
    from streamhsm import Event, State, StreamTable

    t = StreamTable(2)
    t.enable_trace(4)
    t.dispatch(t.open(), "StreamProvisioned")
    (rec,) = t.trace()
    m = t.machine
    assert (m.State(rec["from_state"]), m.State(rec["to_state"])) == (State.INIT, State.ACTIVE)
    assert m.Event(rec["event"]) is Event.STREAM_PROVISIONED
    assert m.state_names[rec["handled_by"]] == "Init"
    assert m.event_names[rec["event"]] == "StreamProvisioned"
