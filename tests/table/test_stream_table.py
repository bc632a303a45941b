"""StreamTable: slots, dispatch, batches, broadcast, occupancy, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from streamhsm import FREE_SLOT, Event, State, StreamTable, TableFullError

E, S = Event, State


def _snapshot(t: StreamTable) -> tuple:  # type: ignore[type-arg]
    return (t.states.copy(), t.unhandled.copy(), t.unhandled_total, len(t),
            tuple(t.count(s) for s in S))


@pytest.fixture
def table() -> StreamTable:
    t = StreamTable(8)
    for _ in range(5):
        t.open()
    t.dispatch(1, E.STREAM_PROVISIONED)
    t.dispatch(2, E.STREAM_PROVISIONED)
    t.dispatch(2, E.DRIVER_DRAINING)
    t.dispatch(3, E.CLOSE)
    t.release(4)
    return t  # slots: 0 Init, 1 Active, 2 Draining, 3 Closed, 4..7 free


@pytest.mark.smoke
def test_open_release_and_len() -> None:
    t = StreamTable(3)
    assert len(t) == 0 and t.capacity == 3
    assert [t.open(), t.open(), t.open()] == [0, 1, 2]
    with pytest.raises(TableFullError, match="table is full: all 3 slots are open"):
        t.open()
    t.release(1)
    assert len(t) == 2 and t.states[1] == FREE_SLOT and not t.is_open(1)
    assert t.open() == 1 and t.state(1) is S.INIT
    assert t.is_open(0) and not t.is_open(3) and not t.is_open(-1) and not t.is_open(2**80)


def test_state_queries(table: StreamTable) -> None:
    assert [table.state(i) for i in range(4)] == [S.INIT, S.ACTIVE, S.DRAINING, S.CLOSED]
    assert table.count(S.LIVE) == 3 and table.count("Closed") == 1 and table.count(S.ROOT) == 4
    assert table.count(int(S.ACTIVE)) == 1
    assert table.is_in(2, S.LIVE) and not table.is_in(3, "Live")
    assert table.slots_in(S.LIVE).tolist() == [0, 1, 2]
    assert table.slots_in(S.CLOSED).tolist() == [3]
    assert table.states.tolist()[:5] == [S.INIT, S.ACTIVE, S.DRAINING, S.CLOSED, FREE_SLOT]


def test_views_are_read_only_and_live(table: StreamTable) -> None:
    states = table.states
    with pytest.raises(ValueError, match="read-only"):
        states[0] = 3
    with pytest.raises(ValueError, match="read-only"):
        table.unhandled[0] = 3
    table.dispatch(0, E.STREAM_PROVISIONED)
    assert states[0] == S.ACTIVE  # a view, not a copy
    assert table.states is states  # the same object every time: no allocation


def test_unhandled_counts_per_slot_and_total(table: StreamTable) -> None:
    assert not table.dispatch(3, E.STREAM_PROVISIONED)
    assert not table.dispatch(3, "ProducerAttached")
    assert table.dispatch(3, E.CLOSE)
    assert table.unhandled[3] == 2 and table.unhandled_total == 2
    table.release(3)
    assert table.unhandled[3] == 0 and table.unhandled_total == 2
    slot = table.open()
    assert slot == 3 and table.unhandled[3] == 0


def test_dispatch_many_matches_dispatch_one_by_one() -> None:
    rng = np.random.default_rng(7)
    a, b = StreamTable(64), StreamTable(64)
    for _ in range(64):
        a.open(), b.open()
    slots = rng.integers(0, 64, 5000)
    events = rng.integers(0, len(E), 5000).astype(np.uint8)
    handled = a.dispatch_many(slots, events)
    assert handled == sum(b.dispatch(int(s), int(e)) for s, e in zip(slots, events, strict=True))
    sa, sb = _snapshot(a), _snapshot(b)
    assert sa[0].tolist() == sb[0].tolist() and sa[1].tolist() == sb[1].tolist()
    assert sa[2:] == sb[2:]
    assert handled + a.unhandled_total == 5000


@pytest.mark.parametrize(("sdt", "edt"), [(np.int64, np.uint8), (np.int32, np.int32),
                                          (np.int64, np.int64), (np.int32, np.uint8)])
def test_dispatch_many_dtypes(sdt, edt) -> None:  # type: ignore[no-untyped-def]
    t = StreamTable(4)
    t.open(), t.open()
    assert t.dispatch_many(np.array([0, 1, 1], sdt), np.array([0, 0, 0], edt)) == 2
    assert t.unhandled_total == 1 and t.state(1) is S.ACTIVE


def test_dispatch_many_accepts_read_only_and_empty() -> None:
    t = StreamTable(2)
    t.open()
    slots, events = np.zeros(3, np.int64), np.zeros(3, np.uint8)
    slots.flags.writeable = events.flags.writeable = False
    assert t.dispatch_many(slots, events) == 1
    assert t.dispatch_many(np.empty(0, np.int64), np.empty(0, np.uint8)) == 0


def test_broadcast_touches_only_open_slots(table: StreamTable) -> None:
    before_free = table.states[4:].copy()
    assert table.broadcast(E.DRIVER_DRAINING) == 3  # Init, Active (Live) and Draining (own)
    assert [table.state(i) for i in range(4)] == [S.DRAINING] * 3 + [S.CLOSED]
    assert table.unhandled_total == 1  # Closed does not handle DriverDraining
    assert (table.states[4:] == before_free).all() and table.unhandled[4:].sum() == 0
    assert table.broadcast("DriverShutdown") == 3
    assert table.count(S.CLOSED) == 4 and table.count(S.LIVE) == 0 and len(table) == 4


def test_drain_on_producer_loss_policy() -> None:
    t = StreamTable(2, drain_on_producer_loss=True)
    assert t.drain_on_producer_loss and not StreamTable(1).drain_on_producer_loss
    s = t.open()
    t.dispatch(s, E.STREAM_PROVISIONED)
    assert t.dispatch(s, E.PRODUCER_DETACHED) and t.state(s) is S.DRAINING
    assert t.dispatch(s, E.PRODUCER_ATTACHED) and t.state(s) is S.ACTIVE


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("slot", "exc", "match"), [
    (4, IndexError, "slot 4 is not open"),
    (8, IndexError, "slot 8 out of range for capacity 8"),
    (-1, IndexError, "slot -1 out of range for capacity 8"),
    (2**64, IndexError, f"slot {2**64} out of range"),
    (1.0, TypeError, "slot must be an int, got float 1.0"),
    (float("nan"), TypeError, "slot must be an int, got float nan"),
    ("1", TypeError, "slot must be an int, got str '1'"),
    (None, TypeError, "slot must be an int, got NoneType"),
    (True, TypeError, "slot must be an int, got bool True"),
])
def test_bad_slots(table: StreamTable, slot: object, exc: type, match: str) -> None:
    before = _snapshot(table)
    for call in (lambda: table.dispatch(slot, E.CLOSE), lambda: table.state(slot),
                 lambda: table.release(slot), lambda: table.is_in(slot, S.LIVE)):
        with pytest.raises(exc, match=match):
            call()
    after = _snapshot(table)
    assert before[0].tolist() == after[0].tolist() and before[2:] == after[2:]


def test_numpy_integer_slot_is_accepted(table: StreamTable) -> None:
    assert table.dispatch(np.int32(0), E.STREAM_PROVISIONED)
    assert table.state(np.int64(0)) is S.ACTIVE


@pytest.mark.parametrize(("event", "exc", "match"), [
    (10, ValueError, "unknown event code 10"),
    ("Bogus", ValueError, "unknown event name 'Bogus'"),
    (2.0, TypeError, "got float 2.0"),
    (S.CLOSED, TypeError, "belongs to State"),
])
def test_bad_events(table: StreamTable, event: object, exc: type, match: str) -> None:
    before = _snapshot(table)
    with pytest.raises(exc, match=match):
        table.dispatch(1, event)
    with pytest.raises(exc, match=match):
        table.broadcast(event)
    after = _snapshot(table)
    assert before[0].tolist() == after[0].tolist() and before[2:] == after[2:]


def _ok_slots() -> np.ndarray:
    return np.array([0, 1, 2], np.int64)


def _ok_events() -> np.ndarray:
    return np.array([0, 1, 5], np.uint8)


@pytest.mark.parametrize(("slots", "events", "exc", "match"), [
    ([0, 1, 2], _ok_events(), TypeError, "slots must be a numpy array, got list"),
    (_ok_slots(), (0, 1, 5), TypeError, "events must be a numpy array, got tuple"),
    (_ok_slots().astype(np.float64), _ok_events(), TypeError,
     "slots must have dtype int32 or int64, got float64"),
    (_ok_slots(), _ok_events().astype(np.float32), TypeError,
     "events must have dtype uint8 or int32 or int64, got float32"),
    (_ok_slots().astype(np.uint64), _ok_events(), TypeError, "got uint64"),
    (_ok_slots(), _ok_events().astype(bool), TypeError, "got bool"),
    (_ok_slots().reshape(3, 1), _ok_events(), ValueError,
     r"slots must be 1-dimensional, got shape \(3, 1\)"),
    (np.array([0, 9, 99, 9, 2], np.int64)[::2], _ok_events(), IndexError, r"slots\[1\]: slot 99"),
    (_ok_slots(), np.array([0, 1], np.uint8), ValueError,
     "slots and events must have the same length, got 3 and 2"),
    (np.array([0, 1, 4], np.int64), _ok_events(), IndexError, r"slots\[2\]: slot 4 is not open"),
    (np.array([0, 8, 1], np.int64), _ok_events(), IndexError,
     r"slots\[1\]: slot 8 out of range for capacity 8"),
    (np.array([0, -3, 1], np.int32), _ok_events(), IndexError, r"slots\[1\]: slot -3 out of range"),
    (_ok_slots(), np.array([0, 1, 10], np.uint8), ValueError,
     r"events\[2\]: unknown event code 10 for machine 'stream'"),
    (_ok_slots(), np.array([-1, 1, 2], np.int64), ValueError,
     r"events\[0\]: unknown event code -1"),
])
def test_dispatch_many_rejects_bad_batches_atomically(table, slots, events, exc, match) -> None:  # type: ignore[no-untyped-def]
    before = _snapshot(table)
    with pytest.raises(exc, match=match):
        table.dispatch_many(slots, events)
    after = _snapshot(table)
    assert before[0].tolist() == after[0].tolist() and before[1].tolist() == after[1].tolist()
    assert before[2:] == after[2:]


@pytest.mark.parametrize(("capacity", "exc", "match"), [
    (0, ValueError, "capacity must be between 1 and 2147483647, got 0"),
    (-5, ValueError, "got -5"),
    (2**31, ValueError, f"got {2**31}"),
    (2.5, TypeError, "capacity must be an int, got float 2.5"),
    ("8", TypeError, "capacity must be an int, got str"),
])
def test_bad_capacity(capacity: object, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        StreamTable(capacity)  # type: ignore[arg-type]


def test_uninitialised_subclass_raises_instead_of_crashing() -> None:
    class Forgot(StreamTable):
        def __init__(self) -> None:  # never calls super().__init__
            pass

    t = Forgot()
    with pytest.raises(RuntimeError, match="not initialised"):
        t.open()
    with pytest.raises(RuntimeError, match="not initialised"):
        t.broadcast(0)
    with pytest.raises(RuntimeError, match="not initialised"):
        t.dispatch_many(np.zeros(1, np.int64), np.zeros(1, np.uint8))
    with pytest.raises(IndexError, match="out of range for capacity 0"):
        t.dispatch(0, 0)
    assert len(t) == 0 and "uninitialised" in repr(t)


def test_per_slot_state_is_small() -> None:
    t = StreamTable(1000)
    assert t.nbytes_per_slot <= 32
    assert "open=0/1000" in repr(t)


def test_dispatch_many_reports_the_first_offender(table: StreamTable) -> None:
    """A free slot before an out-of-range index is reported first (and vice versa)."""
    events = np.zeros(3, np.uint8)
    with pytest.raises(IndexError, match=r"slots\[1\]: slot 5 is not open"):
        table.dispatch_many(np.array([0, 5, 99], np.int64), events)
    with pytest.raises(IndexError, match=r"slots\[1\]: slot 99 out of range"):
        table.dispatch_many(np.array([0, 99, 5], np.int64), events)
    with pytest.raises(ValueError, match=r"events\[0\]: unknown event code 12"):
        table.dispatch_many(np.array([5, 0, 0], np.int64), np.array([12, 0, 0], np.uint8))


def test_full_table_skips_nothing_it_must_check() -> None:
    """With no free slot the open-check gather is skipped; ranges are still checked."""
    t = StreamTable(4)
    for _ in range(4):
        t.open()
    assert t.dispatch_many(np.arange(4, dtype=np.int64), np.zeros(4, np.uint8)) == 4
    with pytest.raises(IndexError, match=r"slots\[3\]: slot 4 out of range"):
        t.dispatch_many(np.arange(1, 5, dtype=np.int64), np.zeros(4, np.uint8))
    assert t.count(State.ACTIVE) == 4 and t.unhandled_total == 0


def test_stats_is_plain_data(table: StreamTable) -> None:
    # fixture: 0 Init, 1 Active, 2 Draining, 3 Closed
    table.dispatch(3, Event.STREAM_PROVISIONED)  # unhandled in Closed
    table.dispatch(3, Event.STREAM_PROVISIONED)
    # Init, Active -> Draining; Draining keeps; Closed misses
    table.broadcast(Event.DRIVER_DRAINING)
    st = table.stats()
    assert st["machine"] == "stream" and st["capacity"] == 8 and st["open"] == 4
    assert st["occupancy"] == {"Root": 4, "Live": 3, "Init": 0, "Active": 0, "Draining": 3,
                               "Closed": 1}
    assert st["unhandled_by_slot"] == {3: 3} and st["unhandled_total"] == 3
    assert st["transitions"] == {"Init/StreamProvisioned": 2, "Init/Close": 1,
                                 "Init/DriverDraining": 1, "Active/DriverDraining": 2}
    import json

    json.dumps(st)  # plain data
    with pytest.raises(ValueError, match="read-only"):
        table.transition_counts[0, 0] = 1


def test_self_transitions_are_counted() -> None:
    from streamhsm import MachineSpec, MachineTable

    spec = MachineSpec("selfy", ["Again", "Stay"], initial="A").state("A")
    spec.on("A", "Again", "A").on("A", "Stay")
    t = MachineTable(spec.compile(), 2)
    s = t.open()
    for _ in range(3):
        assert t.dispatch(s, "Again") and t.dispatch(s, "Stay")
    t.broadcast("Again")
    assert t.transition_counts[1].tolist() == [4, 0]
