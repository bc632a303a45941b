"""Bad-input matrix of the tables: every table entry point with each class of bad input gets a
clear exception naming the value, and nothing else changes (the driver's is in
driver/test_bad_input.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhsm import Event, State, StreamTable

BIG = 2**70
NAN = float("nan")


def table() -> StreamTable:
    t = StreamTable(8)
    for _ in range(6):
        t.open()
    t.dispatch(1, Event.STREAM_PROVISIONED)
    t.dispatch(2, Event.CLOSE)
    t.release(5)  # slots: 0 Init, 1 Active, 2 Closed, 3-4 Init, 5-7 free
    return t


def snap_table(t: StreamTable) -> tuple[Any, ...]:
    return (t.states.tobytes(), t.unhandled.tobytes(), t.unhandled_total, len(t),
            tuple(t.count(s) for s in State))


I64 = np.array([0, 1], np.int64)
U8 = np.array([1, 1], np.uint8)
RO = np.array([0, 1], np.int64)
RO.flags.writeable = False

TABLE_CASES: list[tuple[str, Callable[[StreamTable], object], type[Exception], str]] = [
    # slots: wrong type, negative, out of range, huge, NaN, float, released
    ("dispatch slot str", lambda t: t.dispatch("0", 0), TypeError,
     "slot must be an int, got str '0'"),
    ("dispatch slot float", lambda t: t.dispatch(0.0, 0), TypeError, "got float 0.0"),
    ("dispatch slot nan", lambda t: t.dispatch(NAN, 0), TypeError, "got float nan"),
    ("dispatch slot None", lambda t: t.dispatch(None, 0), TypeError, "got NoneType None"),
    ("dispatch slot negative", lambda t: t.dispatch(-1, 0), IndexError,
     "slot -1 out of range for capacity 8"),
    ("dispatch slot too big", lambda t: t.dispatch(8, 0), IndexError, "slot 8 out of range"),
    ("dispatch slot huge", lambda t: t.dispatch(BIG, 0), IndexError, f"slot {BIG} out of range"),
    ("dispatch slot released", lambda t: t.dispatch(5, 0), IndexError, "slot 5 is not open"),
    ("dispatch slot never opened", lambda t: t.dispatch(7, 0), IndexError, "slot 7 is not open"),
    # events: unknown codes and names, wrong types
    ("dispatch event code", lambda t: t.dispatch(1, 10), ValueError, "unknown event code 10"),
    ("dispatch event negative", lambda t: t.dispatch(1, -1), ValueError, "unknown event code -1"),
    ("dispatch event huge", lambda t: t.dispatch(1, BIG), ValueError, f"unknown event code {BIG}"),
    ("dispatch event name", lambda t: t.dispatch(1, "Provisioned"), ValueError,
     "unknown event name 'Provisioned'"),
    ("dispatch event float", lambda t: t.dispatch(1, 1.0), TypeError, "got float 1.0"),
    ("dispatch event nan", lambda t: t.dispatch(1, NAN), TypeError, "got float nan"),
    ("dispatch event bool", lambda t: t.dispatch(1, True), TypeError, "got bool True"),
    ("dispatch event bytes", lambda t: t.dispatch(1, b"Close"), TypeError, "got bytes"),
    ("dispatch event State", lambda t: t.dispatch(1, State.ACTIVE), TypeError, "belongs to State"),
    ("broadcast event code", lambda t: t.broadcast(99), ValueError, "unknown event code 99"),
    ("broadcast event None", lambda t: t.broadcast(None), TypeError, "got NoneType"),
    ("release released", lambda t: t.release(5), IndexError, "slot 5 is not open"),
    ("release float", lambda t: t.release(1.5), TypeError, "got float 1.5"),
    ("state released", lambda t: t.state(6), IndexError, "slot 6 is not open"),
    ("is_in bad state", lambda t: t.is_in(1, "Nowhere"), ValueError,
     "unknown state name 'Nowhere'"),
    ("is_in state code", lambda t: t.is_in(1, 77), ValueError, "unknown state code 77"),
    ("count bad state", lambda t: t.count(2.0), TypeError, "state must be an int code"),
    ("slots_in bad state", lambda t: t.slots_in(-3), ValueError, "unknown state code -3"),
    ("is_open float", lambda t: t.is_open(1.0), TypeError, "slot must be an int"),
    # batches: wrong dtype, shape, contiguity, lengths, values; read-only inputs are fine
    ("many list", lambda t: t.dispatch_many([0, 1], U8), TypeError,
     "slots must be a numpy array, got list"),
    ("many float dtype", lambda t: t.dispatch_many(I64.astype(float), U8), TypeError,
     "got float64"),
    ("many uint16 events", lambda t: t.dispatch_many(I64, U8.astype(np.uint16)), TypeError,
     "got uint16"),
    ("many object dtype", lambda t: t.dispatch_many(I64.astype(object), U8), TypeError,
     "got object"),
    ("many big-endian", lambda t: t.dispatch_many(I64.astype(">i8"), U8), TypeError, "got >i8"),
    ("many 2-D", lambda t: t.dispatch_many(np.zeros((2, 1), np.int64), U8), ValueError,
     "1-dimensional"),
    ("many 0-D", lambda t: t.dispatch_many(np.int64(0), U8), TypeError, "numpy array, got int64"),
    # a strided view is copied once and validated like any array
    ("many strided", lambda t: t.dispatch_many(np.array([0, 0, 70, 0], np.int64)[::2], U8),
     IndexError, r"slots\[1\]: slot 70 out of range"),
    ("many lengths", lambda t: t.dispatch_many(I64, np.ones(3, np.uint8)), ValueError,
     "same length, got 2 and 3"),
    ("many released", lambda t: t.dispatch_many(np.array([1, 5], np.int64), U8), IndexError,
     r"slots\[1\]: slot 5 is not open"),
    ("many negative", lambda t: t.dispatch_many(np.array([-1, 1], np.int64), U8), IndexError,
     r"slots\[0\]: slot -1 out of range"),
    ("many event", lambda t: t.dispatch_many(RO, np.array([1, 200], np.uint8)), ValueError,
     r"events\[1\]: unknown event code 200"),
    ("many event negative", lambda t: t.dispatch_many(RO, np.array([1, -7], np.int64)), ValueError,
     r"events\[1\]: unknown event code -7"),
]


@pytest.mark.smoke
@pytest.mark.parametrize(("name", "call", "exc", "match"), TABLE_CASES,
                         ids=[c[0] for c in TABLE_CASES])
def test_table_bad_input(name: str, call: Callable[[StreamTable], object], exc: type[Exception],
                         match: str) -> None:
    t = table()
    before = snap_table(t)
    with pytest.raises(exc, match=match):
        call(t)
    assert snap_table(t) == before, f"{name} changed the table"


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_atomic_batches_with_injected_invalid_elements(data: st.DataObject) -> None:
    """Random valid batches with invalid elements injected at random positions: the batch raises
    and the table is exactly as before."""
    t = table()
    n = data.draw(st.integers(1, 60))
    open_slots = [0, 1, 2, 3, 4]
    slots = np.array(data.draw(st.lists(st.sampled_from(open_slots), min_size=n, max_size=n)),
                     np.int64)
    events = np.array(data.draw(st.lists(st.integers(0, len(Event) - 1), min_size=n, max_size=n)),
                      np.uint8)
    k = data.draw(st.integers(1, 3))
    for _ in range(k):
        pos = data.draw(st.integers(0, n - 1))
        kind = data.draw(st.sampled_from(["free", "range", "negative", "event"]))
        if kind == "free":
            slots[pos] = data.draw(st.sampled_from([5, 6, 7]))
        elif kind == "range":
            slots[pos] = data.draw(st.integers(8, 2**40))
        elif kind == "negative":
            slots[pos] = data.draw(st.integers(-(2**40), -1))
        else:
            events[pos] = data.draw(st.integers(len(Event), 255))
    dt = data.draw(st.sampled_from([np.int64, np.int32]))
    if dt is np.int32:
        slots = np.clip(slots, -(2**31), 2**31 - 1).astype(np.int32)
    before = snap_table(t)
    with pytest.raises((IndexError, ValueError), match="nothing was dispatched"):
        t.dispatch_many(slots, events)
    assert snap_table(t) == before
