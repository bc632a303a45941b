"""Threads hammering one table: batches run without the GIL under the table's lock, so every
counter stays consistent and the result equals a serial replay.

These are stress tests; the deterministic interleavings (a batch held at a gate while mutators
line up behind it) that fail on every run without the lock or the busy-waits are in
table/test_memory_safety.py."""

from __future__ import annotations

import threading

import numpy as np

from streamhsm import FREE_SLOT, Event, State, StreamTable

N_PER_THREAD = 2000
ROUNDS = 40


def _occupancy_matches(t: StreamTable) -> bool:
    hist = np.bincount(t.states[t.states != FREE_SLOT], minlength=len(State))
    return all(t.count(s) == hist[s] for s in (State.INIT, State.ACTIVE, State.DRAINING,
                                               State.CLOSED))


def test_threads_on_one_table_equal_a_serial_replay() -> None:
    """Four threads, each toggling its own slots Active <-> Draining (drain_on_producer_loss) with
    dispatch_many, dispatch and broadcast of events that never change state, while the main thread
    opens and releases spare slots. Toggles per slot are even, so the serial result is known."""
    n_threads = 4
    t = StreamTable(n_threads * N_PER_THREAD + 64, drain_on_producer_loss=True)
    for _ in range(n_threads * N_PER_THREAD):
        t.dispatch(t.open(), Event.STREAM_PROVISIONED)
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads + 1)

    def worker(k: int) -> None:
        try:
            mine = np.arange(k * N_PER_THREAD, (k + 1) * N_PER_THREAD, dtype=np.int64)
            toggles = np.empty(2 * mine.size, np.int64)
            toggles[0::2] = mine
            toggles[1::2] = mine
            events = np.tile(np.array([Event.PRODUCER_DETACHED, Event.PRODUCER_ATTACHED], np.uint8),
                             mine.size)
            start.wait()
            for r in range(ROUNDS):
                assert t.dispatch_many(toggles, events) == toggles.size
                t.broadcast(Event.EPOCH_BUMPED)  # handled in Active and Draining: no change
                slot = int(mine[r % mine.size])
                t.dispatch(slot, Event.PRODUCER_DETACHED)
                t.dispatch(slot, Event.PRODUCER_ATTACHED)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for th in threads:
        th.start()
    start.wait()
    spare_ok = True
    for _ in range(200):
        s = t.open()
        t.dispatch(s, Event.STREAM_PROVISIONED)
        t.release(s)
        spare_ok &= len(t) == n_threads * N_PER_THREAD
    for th in threads:
        th.join()
    assert not errors, errors
    assert spare_ok
    assert t.count(State.ACTIVE) == n_threads * N_PER_THREAD
    assert t.count(State.DRAINING) == 0 and t.count(State.LIVE) == n_threads * N_PER_THREAD
    assert t.unhandled_total == 0 and int(t.unhandled.sum()) == 0
    assert _occupancy_matches(t)


def test_batches_on_two_tables_run_in_parallel_threads() -> None:
    """Different tables are independent: concurrent batches give the serial results. (That the
    batches really release the GIL is proven in table/test_memory_safety.py, by a test that fails
    when they do not.)"""
    rng = np.random.default_rng(11)
    slots = rng.integers(0, 500, 200_000)
    events = rng.integers(0, len(Event), 200_000).astype(np.uint8)
    serial = StreamTable(500)
    for _ in range(500):
        serial.open()
    expected = serial.dispatch_many(slots, events)
    tables = [StreamTable(500) for _ in range(2)]
    results: list[int] = []
    for tb in tables:
        for _ in range(500):
            tb.open()
    threads = [threading.Thread(
                   target=lambda tb=tb: results.append(tb.dispatch_many(slots, events)))
               for tb in tables]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == [expected, expected]
    for tb in tables:
        assert (tb.states == serial.states).all() and (tb.unhandled == serial.unhandled).all()
