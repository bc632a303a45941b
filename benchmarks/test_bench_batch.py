"""dispatch_many and broadcast beside the bare table loop over the same arrays (groups
``many`` and ``broadcast``), and the GIL release check (group ``threads``)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from streamhsm import Event, State, StreamTable
from streamhsm.tools._floor import broadcast_floor, copy_floor, table_floor, table_floor_int32

LEASE_EVENTS = np.array([Event.PRODUCER_ATTACHED, Event.CONSUMER_ATTACHED, Event.PRODUCER_DETACHED,
                         Event.CONSUMER_DETACHED, Event.EPOCH_BUMPED], np.uint8)


def active_table(n: int) -> StreamTable:
    t = StreamTable(n)
    for _ in range(n):
        t.open()
    t.broadcast(Event.STREAM_PROVISIONED)
    return t


@pytest.fixture(scope="module")
def workload(sizes):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(sizes.seed)
    slots = rng.integers(0, sizes.streams, sizes.events)
    events = rng.choice(LEASE_EVENTS, sizes.events)  # lease traffic on Active streams
    return slots, events


@pytest.mark.benchmark(group="many")
def test_many_floor(benchmark, record, sizes, workload) -> None:  # type: ignore[no-untyped-def]
    t = active_table(sizes.streams)
    states = t.states.copy()
    nxt = t.machine.engine_tables.next_state
    benchmark.extra_info["events"] = sizes.events
    benchmark(table_floor, states, nxt, *workload)
    record("test_many_floor", benchmark)


@pytest.mark.benchmark(group="many")
def test_dispatch_many(benchmark, record, sizes, workload) -> None:  # type: ignore[no-untyped-def]
    t = active_table(sizes.streams)
    benchmark.extra_info["events"] = sizes.events
    handled = benchmark(t.dispatch_many, *workload)
    assert handled == sizes.events
    record("test_dispatch_many", benchmark)


@pytest.mark.benchmark(group="many")
def test_many_floor_int32(benchmark, record, sizes, workload) -> None:  # type: ignore[no-untyped-def]
    t = active_table(sizes.streams)
    states = t.states.copy()
    nxt = t.machine.engine_tables.next_state
    slots, events = workload
    benchmark(table_floor_int32, states, nxt, slots.astype(np.int32), events)
    record("test_many_floor_int32", benchmark)


@pytest.mark.benchmark(group="many")
def test_dispatch_many_int32(benchmark, record, sizes, workload) -> None:  # type: ignore[no-untyped-def]
    """int32 slots, uint8 events: the fastest dtypes (README)."""
    t = active_table(sizes.streams)
    slots, events = workload
    assert benchmark(t.dispatch_many, slots.astype(np.int32), events) == sizes.events
    record("test_dispatch_many_int32", benchmark)


# Transition-heavy traffic: drain_on_producer_loss, ProducerDetached / ProducerAttached at random
# on Active / Draining streams (about half the events transition).
@pytest.fixture(scope="module")
def transitions_workload(sizes):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(sizes.seed + 1)
    slots = rng.integers(0, sizes.streams, sizes.events)
    events = rng.choice(np.array(TOGGLE, np.uint8), sizes.events)
    return slots, events


@pytest.mark.benchmark(group="many-transitions")
def test_many_transitions_floor(benchmark, record, sizes, transitions_workload) -> None:  # type: ignore[no-untyped-def]
    t = toggling_table(sizes.streams)
    states = t.states.copy()
    nxt = t.machine.engine_tables.next_state
    benchmark(table_floor, states, nxt, *transitions_workload)
    record("test_many_transitions_floor", benchmark)


@pytest.mark.benchmark(group="many-transitions")
def test_dispatch_many_transitions(benchmark, record, sizes, transitions_workload) -> None:  # type: ignore[no-untyped-def]
    t = toggling_table(sizes.streams)
    assert benchmark(t.dispatch_many, *transitions_workload) == sizes.events
    assert t.count(State.ACTIVE) + t.count(State.DRAINING) == sizes.streams
    assert t.count(State.DRAINING) == int((t.states == State.DRAINING).sum())
    assert t.transition_counts[State.ACTIVE, Event.PRODUCER_DETACHED] > sizes.events // 8
    record("test_dispatch_many_transitions", benchmark)


# Broadcasts that change every slot: Active <-> Draining under drain_on_producer_loss.
TOGGLE = (int(Event.PRODUCER_DETACHED), int(Event.PRODUCER_ATTACHED))


def toggling_table(n: int) -> StreamTable:
    t = StreamTable(n, drain_on_producer_loss=True)
    for _ in range(n):
        t.open()
    t.broadcast(Event.STREAM_PROVISIONED)
    return t


@pytest.mark.benchmark(group="broadcast")
def test_broadcast_floor(benchmark, record, sizes) -> None:  # type: ignore[no-untyped-def]
    t = toggling_table(sizes.streams)
    states = t.states.copy()
    nxt = t.machine.engine_tables.next_state

    def pair() -> None:
        for e in TOGGLE:
            broadcast_floor(states, nxt, e)

    benchmark.extra_info["streams_x_events"] = 2 * sizes.streams
    benchmark(pair)
    record("test_broadcast_floor", benchmark)


@pytest.mark.benchmark(group="broadcast")
def test_broadcast_memcpy(benchmark, record, sizes) -> None:  # type: ignore[no-untyped-def]
    """Two memcpy of the state array: reading and writing one byte per stream, twice."""
    t = toggling_table(sizes.streams)
    src = t.states.copy()
    dst = np.empty_like(src)

    def pair() -> None:
        copy_floor(dst, src)
        copy_floor(src, dst)

    benchmark(pair)
    record("test_broadcast_memcpy", benchmark)


@pytest.mark.benchmark(group="broadcast")
def test_broadcast(benchmark, record, sizes) -> None:  # type: ignore[no-untyped-def]
    t = toggling_table(sizes.streams)

    def pair() -> None:
        for e in TOGGLE:
            t.broadcast(e)

    benchmark.extra_info["streams_x_events"] = 2 * sizes.streams
    benchmark(pair)
    assert t.count(State.ACTIVE) == sizes.streams and t.unhandled_total == 0
    record("test_broadcast", benchmark)


@pytest.mark.benchmark(group="broadcast-in-place")
def test_broadcast_handled_in_place(benchmark, sizes) -> None:  # type: ignore[no-untyped-def]
    """EpochBumped on Active streams changes no slot: O(states), not O(streams)."""
    t = active_table(sizes.streams)
    assert benchmark(t.broadcast, Event.EPOCH_BUMPED) == sizes.streams


@pytest.mark.benchmark(group="threads")
def test_two_threads_two_tables(benchmark, sizes, workload) -> None:  # type: ignore[no-untyped-def]
    """Two threads, each running dispatch_many on its own table; extra_info holds the serial time
    of the same work measured in the same test, and the speed-up."""
    tables = [active_table(sizes.streams) for _ in range(2)]

    def serial() -> None:
        for t in tables:
            t.dispatch_many(*workload)

    def threaded() -> None:
        threads = [threading.Thread(target=t.dispatch_many, args=workload) for t in tables]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    best_serial = min(_timed(serial) for _ in range(3))
    benchmark(threaded)
    if benchmark.stats is not None:
        benchmark.extra_info["serial_s"] = best_serial
        benchmark.extra_info["speedup"] = best_serial / benchmark.stats.stats.min


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
