"""Bad-input matrix: every public entry point with each class of bad input gets a clear exception
(or, for protocol-level values, a response code) naming the value, and nothing else changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhsm import Driver, DriverConfig, Event, ResponseCode, RevokeReason, Role, State, StreamLifecycle, StreamTable
from streamhsm.driver._idmap import IdMap

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
    ("dispatch slot str", lambda t: t.dispatch("0", 0), TypeError, "slot must be an int, got str '0'"),
    ("dispatch slot float", lambda t: t.dispatch(0.0, 0), TypeError, "got float 0.0"),
    ("dispatch slot nan", lambda t: t.dispatch(NAN, 0), TypeError, "got float nan"),
    ("dispatch slot None", lambda t: t.dispatch(None, 0), TypeError, "got NoneType None"),
    ("dispatch slot negative", lambda t: t.dispatch(-1, 0), IndexError, "slot -1 out of range for capacity 8"),
    ("dispatch slot too big", lambda t: t.dispatch(8, 0), IndexError, "slot 8 out of range"),
    ("dispatch slot huge", lambda t: t.dispatch(BIG, 0), IndexError, f"slot {BIG} out of range"),
    ("dispatch slot released", lambda t: t.dispatch(5, 0), IndexError, "slot 5 is not open"),
    ("dispatch slot never opened", lambda t: t.dispatch(7, 0), IndexError, "slot 7 is not open"),
    # events: unknown codes and names, wrong types
    ("dispatch event code", lambda t: t.dispatch(1, 10), ValueError, "unknown event code 10"),
    ("dispatch event negative", lambda t: t.dispatch(1, -1), ValueError, "unknown event code -1"),
    ("dispatch event huge", lambda t: t.dispatch(1, BIG), ValueError, f"unknown event code {BIG}"),
    ("dispatch event name", lambda t: t.dispatch(1, "Provisioned"), ValueError, "unknown event name 'Provisioned'"),
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
    ("is_in bad state", lambda t: t.is_in(1, "Nowhere"), ValueError, "unknown state name 'Nowhere'"),
    ("is_in state code", lambda t: t.is_in(1, 77), ValueError, "unknown state code 77"),
    ("count bad state", lambda t: t.count(2.0), TypeError, "state must be an int code"),
    ("slots_in bad state", lambda t: t.slots_in(-3), ValueError, "unknown state code -3"),
    ("is_open float", lambda t: t.is_open(1.0), TypeError, "slot must be an int"),
    # batches: wrong dtype, shape, contiguity, lengths, values; read-only inputs are fine
    ("many list", lambda t: t.dispatch_many([0, 1], U8), TypeError, "slots must be a numpy array, got list"),
    ("many float dtype", lambda t: t.dispatch_many(I64.astype(float), U8), TypeError, "got float64"),
    ("many uint16 events", lambda t: t.dispatch_many(I64, U8.astype(np.uint16)), TypeError, "got uint16"),
    ("many object dtype", lambda t: t.dispatch_many(I64.astype(object), U8), TypeError, "got object"),
    ("many big-endian", lambda t: t.dispatch_many(I64.astype(">i8"), U8), TypeError, "got >i8"),
    ("many 2-D", lambda t: t.dispatch_many(np.zeros((2, 1), np.int64), U8), ValueError, "1-dimensional"),
    ("many 0-D", lambda t: t.dispatch_many(np.int64(0), U8), TypeError, "numpy array, got int64"),
    ("many strided", lambda t: t.dispatch_many(np.arange(4, dtype=np.int64)[::2], U8), ValueError, "C-contiguous"),
    ("many lengths", lambda t: t.dispatch_many(I64, np.ones(3, np.uint8)), ValueError, "same length, got 2 and 3"),
    ("many released", lambda t: t.dispatch_many(np.array([1, 5], np.int64), U8), IndexError, r"slots\[1\]: slot 5 is not open"),
    ("many negative", lambda t: t.dispatch_many(np.array([-1, 1], np.int64), U8), IndexError, r"slots\[0\]: slot -1 out of range"),
    ("many event", lambda t: t.dispatch_many(RO, np.array([1, 200], np.uint8)), ValueError, r"events\[1\]: unknown event code 200"),
    ("many event negative", lambda t: t.dispatch_many(RO, np.array([1, -7], np.int64)), ValueError, r"events\[1\]: unknown event code -7"),
]


@pytest.mark.parametrize(("name", "call", "exc", "match"), TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_table_bad_input(name: str, call: Callable[[StreamTable], object], exc: type[Exception],
                         match: str) -> None:
    t = table()
    before = snap_table(t)
    with pytest.raises(exc, match=match):
        call(t)
    assert snap_table(t) == before, f"{name} changed the table"


@pytest.mark.parametrize(("bad", "exc"), [(10, ValueError), ("x", ValueError), (1.5, TypeError),
                                          (None, TypeError), (NAN, TypeError), (BIG, ValueError)])
def test_lifecycle_bad_input(bad: object, exc: type[Exception]) -> None:
    m = StreamLifecycle()
    m.dispatch(Event.STREAM_PROVISIONED)
    with pytest.raises(exc, match=repr(bad) if isinstance(bad, str) else str(bad)):
        m.dispatch(bad)
    assert m.current is State.ACTIVE and m.unhandled == 0
    with pytest.raises(ValueError, match="unknown state name 'x'"):
        m.is_in("x")


def driver() -> Driver:
    d = Driver(DriverConfig(static_stream_ids=(1, 2), allow_dynamic_streams=True,
                            dynamic_stream_id_range=(100, 110), stream_capacity=6, lease_capacity=6))
    d.attach(1, Role.PRODUCER, 10, 0)
    d.attach(1, Role.CONSUMER, 11, 0)
    d.attach(100, Role.CONSUMER, 12, 0, create=True)
    return d


def snap_driver(d: Driver) -> tuple[Any, ...]:
    return (snap_table(d.streams), d.live_leases, dict(d.counters),
            [d.stream_info(s) for s in (1, 2, 100, 101)],
            [d.lease_state(x) for x in range(0, 6)], [d.lease_expiry(x) for x in range(1, 5)])


DRIVER_RAISES: list[tuple[str, Callable[[Driver], object], type[Exception], str]] = [
    ("attach stream float", lambda d: d.attach(1.0, Role.CONSUMER, 20, 1), TypeError, "stream_id must be an int, got float"),
    ("attach stream nan", lambda d: d.attach(NAN, Role.CONSUMER, 20, 1), TypeError, "got float nan"),
    ("attach role None", lambda d: d.attach(1, None, 20, 1), TypeError, "role must be an int, got NoneType"),
    ("attach role float", lambda d: d.attach(1, 1.0, 20, 1), TypeError, "role must be an int, got float"),
    ("attach client str", lambda d: d.attach(1, Role.CONSUMER, "20", 1), TypeError, "client_id must be an int"),
    ("attach now float", lambda d: d.attach(1, Role.CONSUMER, 20, 1.5), TypeError, "now_ns must be an int"),
    ("attach now negative", lambda d: d.attach(1, Role.CONSUMER, 20, -1), ValueError, "now_ns must be between 0 and .*, got -1"),
    ("attach create int", lambda d: d.attach(1, Role.CONSUMER, 20, 1, create=1), TypeError, "create must be a bool"),
    ("keepalive lease float", lambda d: d.keepalive(1.0, 1, client_id=10), TypeError, "lease_id must be an int"),
    ("keepalive now str", lambda d: d.keepalive(1, "1", client_id=10), TypeError, "now_ns must be an int"),
    ("detach lease None", lambda d: d.detach(None, 1, client_id=10), TypeError, "lease_id must be an int, got NoneType"),
    ("revoke lease nan", lambda d: d.revoke(NAN, 1), TypeError, "got float nan"),
    ("poll now float", lambda d: d.poll(1e9), TypeError, "now_ns must be an int, got float"),
    ("poll now negative", lambda d: d.poll(-5), ValueError, "now_ns must be between 0 and .*, got -5"),
    ("bump stream str", lambda d: d.bump_epoch("1"), TypeError, "stream_id must be an int"),
    ("request_shutdown now", lambda d: d.request_shutdown(None), TypeError, "now_ns must be an int"),
    ("stream_state str", lambda d: d.stream_state("1"), TypeError, "stream_id must be an int"),
    ("epoch float", lambda d: d.epoch(1.0), TypeError, "stream_id must be an int"),
    ("lease_state str", lambda d: d.lease_state("1"), TypeError, "lease_id must be an int"),
    ("drain_revoked wrong out", lambda d: d.drain_revoked(np.zeros(4)), TypeError, "REVOKED_NOTICE_DTYPE"),
    ("drain_announces short out", lambda d: d.drain_announces(np.zeros(0, np.int64)), ValueError,
     "out holds 0 entries, 3 announces are due"),
    # issue 9 item 11: times at the edge are refused before anything changes (clock included)
    ("attach now near int64 max", lambda d: d.attach(2, Role.CONSUMER, 20, 2**63 - 10, create=False),
     ValueError, "now_ns must be between 0 and"),
    ("attach creating near int64 max", lambda d: d.attach(105, Role.PRODUCER, 20, 2**63 - 10, create=True),
     ValueError, "now_ns must be between 0 and"),
    ("poll past int64", lambda d: d.poll(2**63 + 1), ValueError, "now_ns must be between 0 and"),
    ("keepalive near int64 max", lambda d: d.keepalive(1, 2**63 - 10, client_id=10), ValueError,
     "now_ns must be between 0 and"),
    ("detach near int64 max", lambda d: d.detach(1, 2**63 - 10, client_id=10), ValueError,
     "now_ns must be between 0 and"),
    ("shutdown near int64 max", lambda d: d.request_shutdown(2**63 - 10), ValueError,
     "now_ns must be between 0 and"),
    ("keepalive client str", lambda d: d.keepalive(1, 1, client_id="10"), TypeError,
     "client_id must be an int"),
    ("keepalive without client", lambda d: d.keepalive(1, 1), TypeError, "client_id"),
    ("detach without client", lambda d: d.detach(1, 1), TypeError, "client_id"),
    ("revoke reason", lambda d: d.revoke(1, 1, reason=RevokeReason.SHUTDOWN), ValueError,
     "revoke reason must be REVOKED or EXPIRED"),
]


@pytest.mark.parametrize(("name", "call", "exc", "match"), DRIVER_RAISES, ids=[c[0] for c in DRIVER_RAISES])
def test_driver_python_misuse_raises(name: str, call: Callable[[Driver], object],
                                     exc: type[Exception], match: str) -> None:
    d = driver()
    before = snap_driver(d)
    with pytest.raises(exc, match=match):
        call(d)
    assert snap_driver(d) == before, f"{name} changed the driver"
    assert d.now_ns == 0, f"{name} moved the driver's clock"
    assert d.poll(1) == 0  # and the driver still works


REJ, INV = ResponseCode.REJECTED, ResponseCode.INVALID_PARAMS
DRIVER_RESPONDS: list[tuple[str, Callable[[Driver], Any], ResponseCode, str]] = [
    ("attach stream negative", lambda d: d.attach(-1, Role.CONSUMER, 20, 1), INV, "stream id -1 out of range"),
    ("attach stream huge", lambda d: d.attach(BIG, Role.CONSUMER, 20, 1), INV, f"stream id {BIG} out of range"),
    ("attach role code", lambda d: d.attach(1, 0, 20, 1), INV, "unknown role 0"),
    ("attach role name", lambda d: d.attach(1, "publisher", 20, 1), INV, "unknown role 'publisher'"),
    ("attach client zero", lambda d: d.attach(1, Role.CONSUMER, 0, 1), INV, "client id 0 out of range"),
    ("attach client huge", lambda d: d.attach(1, Role.CONSUMER, BIG, 1), INV, f"client id {BIG} out of range"),
    ("attach client negative", lambda d: d.attach(1, Role.CONSUMER, -4, 1), INV, "client id -4 out of range"),
    ("attach unknown stream", lambda d: d.attach(7, Role.CONSUMER, 20, 1), REJ, "unknown stream 7"),
    ("attach outside range", lambda d: d.attach(7, Role.CONSUMER, 20, 1, create=True), INV, "outside the dynamic range"),
    ("keepalive unknown", lambda d: d.keepalive(999, 1, client_id=10), REJ, "unknown lease"),
    ("keepalive zero", lambda d: d.keepalive(0, 1, client_id=10), REJ, "unknown lease"),
    ("keepalive huge", lambda d: d.keepalive(BIG, 1, client_id=10), REJ, "unknown lease"),
    ("keepalive negative", lambda d: d.keepalive(-3, 1, client_id=10), REJ, "unknown lease"),
    ("detach unknown", lambda d: d.detach(999, 1, client_id=10), REJ, "unknown lease"),
    # issue 9 item 15: another client's live lease answers exactly like an unknown lease
    ("keepalive other client", lambda d: d.keepalive(1, 1, client_id=11), REJ, "unknown lease"),
    ("detach other client", lambda d: d.detach(1, 1, client_id=11), REJ, "unknown lease"),
    ("detach wrong stream", lambda d: d.detach(1, 1, client_id=10, stream_id=2), REJ, "unknown lease"),
    ("detach wrong role", lambda d: d.detach(1, 1, client_id=10, role="consumer"), REJ, "unknown lease"),
    ("keepalive client zero", lambda d: d.keepalive(1, 1, client_id=0), REJ, "unknown lease"),
    ("detach client huge", lambda d: d.detach(1, 1, client_id=BIG), REJ, "unknown lease"),
    ("revoke huge", lambda d: d.revoke(BIG, 1), REJ, "unknown lease"),
    ("bump unknown", lambda d: d.bump_epoch(55), REJ, "unknown stream 55"),
    ("bump huge", lambda d: d.bump_epoch(BIG), REJ, f"unknown stream {BIG}"),
]


@pytest.mark.parametrize(("name", "call", "code", "reason"), DRIVER_RESPONDS, ids=[c[0] for c in DRIVER_RESPONDS])
def test_driver_protocol_values_get_response_codes(name: str, call: Callable[[Driver], Any],
                                                   code: ResponseCode, reason: str) -> None:
    d = driver()
    before = snap_driver(d)
    rejected = d.counters["attaches_rejected"]
    r = call(d)
    assert r.code is code and reason in r.reason and not r
    after = snap_driver(d)
    if name.startswith("attach"):
        assert d.counters["attaches_rejected"] == rejected + 1
        before[2]["attaches_rejected"] = after[2]["attaches_rejected"]
    assert after == before, f"{name} changed the driver"


def test_idmap_bad_keys() -> None:
    m = IdMap(4)
    with pytest.raises(TypeError, match="key must be an int, got float"):
        m.put(1.0, 1)
    with pytest.raises(ValueError, match="key must be between 0 and 2\\*\\*63 - 1, got -1"):
        m.get(-1)
    for k in range(4):
        m.put(k, k)
    with pytest.raises(OverflowError, match="IdMap is full"):
        m.put(9, 9)
    assert len(m) == 4 and m.get(3) == 3
    with pytest.raises(ValueError, match="max_entries must be a positive int"):
        IdMap(0)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_atomic_batches_with_injected_invalid_elements(data: st.DataObject) -> None:
    """Random valid batches with invalid elements injected at random positions: the batch raises
    and the table is exactly as before."""
    t = table()
    n = data.draw(st.integers(1, 60))
    open_slots = [0, 1, 2, 3, 4]
    slots = np.array(data.draw(st.lists(st.sampled_from(open_slots), min_size=n, max_size=n)), np.int64)
    events = np.array(data.draw(st.lists(st.integers(0, len(Event) - 1), min_size=n, max_size=n)), np.uint8)
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
