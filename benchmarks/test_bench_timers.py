"""Timers (issue 21), side by side in one run, on ``sizes.streams`` slots of the lease machine of
``streamhsm.tools._timer_bench`` (one one-shot expiry timer that Keepalive restarts), deadlines
spread so that one advance fires 1 % of the slots (groups ``timers-advance``,
``timers-keepalive``, ``timers-restart``, ``timers-cancel``, ``timers-fire``).

- ``advance`` with nothing due (target: under 1 us, the summary makes it O(1));
- ``advance`` with 1 % due beside ``timer_floor``, the bare compiled loop over the deadline column
  that finds the due slots and applies the table lookup and state store (target: at most 1.5x);
  both start with cold caches (a 64 MB scratch write), as a periodic advance would;
- keepalives through ``dispatch_many`` (``sizes.streams // 10`` in random slot order), with and
  without the timer;
- the peers a Python user would pick, each holding one armed timer per stream: ``asyncio``
  ``call_later`` / ``cancel`` on a fake clock, and a ``heapq`` of ``(deadline, slot)`` with lazy
  deletion: ns per restart (cancel + arm), cancel and fire, and bytes per armed timer.

The per-operation numbers are recorded (``record``) and the summary prints the comparisons.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamhsm import FIRED_DTYPE
from streamhsm._engine_tables import table_layout
from streamhsm.tools._floor import timer_floor
from streamhsm.tools._timer_bench import (
    EVENTS,
    GROUPS,
    LEASE_NS,
    STEP_NS,
    AsyncioTimers,
    HeapTimers,
    spread_table,
    traced_bytes,
)

ROUNDS = 12
#: the advance pair: more rounds (the floor is 0.5-1 ms, one preempted round moves its min)
ADVANCE_ROUNDS = 40
SCRATCH = np.zeros(64 << 20, np.uint8)


def _flush() -> None:
    """Evict the caches (a 64 MB write, twice the last-level cache of the machines measured)."""
    SCRATCH[::64] += 1


def _per_op(benchmark, record, name: str, ops: int) -> None:  # type: ignore[no-untyped-def]
    """Record the best round of ``benchmark`` as ns per operation under ``name``."""
    stats = getattr(benchmark, "stats", None)
    if stats is not None and ops:
        record(name, stats.stats.min / ops * 1e9)


@pytest.fixture(scope="module")
def spread(sizes):  # type: ignore[no-untyped-def]
    """The timed table, its snapshot (the starting point of each round) and the first cohort's
    deadline (advancing there fires 1 % of the slots)."""
    t = spread_table(sizes.streams, sizes.seed + 21)
    return t, t.snapshot(), LEASE_NS


@pytest.fixture(scope="module")
def keepalives(sizes):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(sizes.seed + 22)
    n = sizes.streams // 10
    return rng.integers(0, sizes.streams, n), np.zeros(n, np.uint8)


# ------------------------------------------------------------------------ advance
@pytest.mark.benchmark(group="timers-advance-idle")
def test_advance_nothing_due(benchmark, record, spread) -> None:  # type: ignore[no-untyped-def]
    t, snap, due = spread
    t.restore(snap)
    now = t.now_ns
    assert t.advance(now) == 0
    benchmark(t.advance, now)
    _per_op(benchmark, record, "advance_idle_ns", 1)


@pytest.mark.benchmark(group="timers-advance")
def test_advance_one_percent(benchmark, record, sizes, spread) -> None:  # type: ignore[no-untyped-def]
    t, snap, due = spread
    out = np.zeros(sizes.streams // GROUPS + 1, FIRED_DTYPE)

    def reset() -> None:
        t.restore(snap)
        _flush()

    reset()
    assert t.advance(due, out) == sizes.streams // GROUPS
    assert (np.diff(out["slot"][:sizes.streams // GROUPS]) > 0).all()
    benchmark.pedantic(t.advance, args=(due, out), setup=reset, rounds=ADVANCE_ROUNDS,
                       iterations=1)
    record("test_advance_one_percent", benchmark)
    _per_op(benchmark, record, "fire_table_ns", sizes.streams // GROUPS)


@pytest.mark.benchmark(group="timers-advance")
def test_advance_floor(benchmark, record, sizes, spread) -> None:  # type: ignore[no-untyped-def]
    t, snap, due = spread
    t.restore(snap)
    deadlines0, states0 = np.array(t.deadlines("Active.Expire")), np.array(t.states)
    deadlines, states = deadlines0.copy(), states0.copy()
    nxt, expire = t.machine.engine_tables.next_state, 1
    with pytest.raises(ValueError, match="event 9 is not a column"):
        timer_floor(states, nxt, deadlines, due, 9)
    with pytest.raises(ValueError, match="states has 1 slots"):
        timer_floor(states[:1], nxt, deadlines, due, expire)
    # the floor does the table's work: the same slots fire into the same states
    assert timer_floor(states, nxt, deadlines, due, expire) == sizes.streams // GROUPS
    t.advance(due)
    np.testing.assert_array_equal(states, t.states)
    np.testing.assert_array_equal(deadlines, t.deadlines("Active.Expire"))

    def reset() -> None:
        np.copyto(deadlines, deadlines0)
        np.copyto(states, states0)
        _flush()

    benchmark.pedantic(timer_floor, args=(states, nxt, deadlines, due, expire), setup=reset,
                       rounds=ADVANCE_ROUNDS, iterations=1)
    record("test_advance_floor", benchmark)


# ------------------------------------------------------------------------ keepalives
def _keepalive_run(benchmark, record, sizes, keepalives, timers: bool, name: str):  # type: ignore[no-untyped-def]
    t = spread_table(sizes.streams, sizes.seed + 21, timers)
    slots, events = keepalives
    assert t.dispatch_many(slots, events) == len(slots)
    if timers:  # each keepalive re-armed its slot at the clock
        assert (t.deadlines("Active.Expire")[slots] == t.now_ns + LEASE_NS).all()
    benchmark(t.dispatch_many, slots, events)
    record(name, benchmark)
    _per_op(benchmark, record, "restart_table_ns" if timers else "keepalive_untimed_ns",
            len(slots))


@pytest.mark.benchmark(group="timers-keepalive")
def test_keepalives_without_timers(benchmark, record, sizes, keepalives) -> None:  # type: ignore[no-untyped-def]
    _keepalive_run(benchmark, record, sizes, keepalives, False, "test_keepalives_without_timers")


@pytest.mark.benchmark(group="timers-keepalive")
def test_keepalives_with_timers(benchmark, record, sizes, keepalives) -> None:  # type: ignore[no-untyped-def]
    _keepalive_run(benchmark, record, sizes, keepalives, True, "test_keepalives_with_timers")


@pytest.mark.benchmark(group="timers-cancel")
def test_table_cancel(benchmark, record, sizes, spread) -> None:  # type: ignore[no-untyped-def]
    """Detach (Active -> Expired: the cell's cancel mask) on distinct slots, from the snapshot."""
    t, snap, due = spread
    slots = np.random.default_rng(sizes.seed + 23).permutation(sizes.streams)[
        :sizes.streams // 10].astype(np.int64)
    detach = np.full(len(slots), 2, np.uint8)

    def reset() -> None:
        t.restore(snap)

    reset()
    t.dispatch_many(slots, detach)
    assert (t.deadlines("Active.Expire")[slots] == np.iinfo(np.int64).max).all()
    benchmark.pedantic(t.dispatch_many, args=(slots, detach), setup=reset, rounds=ROUNDS,
                       iterations=1)
    _per_op(benchmark, record, "cancel_table_ns", len(slots))


# ------------------------------------------------------------------------ peers
def _cohorts(n: int, seed: int) -> list[list[int]]:
    perm = np.random.default_rng(seed).permutation(n)
    return [c.tolist() for c in np.array_split(perm, GROUPS)]


def _heap(n: int, seed: int) -> HeapTimers:
    h = HeapTimers(n)
    for g, cohort in enumerate(_cohorts(n, seed)):
        h.arm(cohort, [g * STEP_NS + LEASE_NS] * len(cohort))
    return h


def _asyncio(n: int, seed: int) -> AsyncioTimers:
    a = AsyncioTimers(n)
    for g, cohort in enumerate(_cohorts(n, seed)):
        a.loop.now = g * STEP_NS / 1e9
        a.arm(cohort, LEASE_NS / 1e9)
    return a


PEERS = {"heapq": _heap, "asyncio": _asyncio}


@pytest.fixture(params=sorted(PEERS))
def peer(request, sizes):  # type: ignore[no-untyped-def]
    """A peer structure with one timer armed per stream, in the cohorts of the table."""
    p = PEERS[request.param](sizes.streams, sizes.seed + 21)
    yield request.param, p
    if isinstance(p, AsyncioTimers):
        p.close()


@pytest.mark.benchmark(group="timers-restart")
def test_peer_restart(benchmark, record, sizes, keepalives, peer) -> None:  # type: ignore[no-untyped-def]
    """A keepalive: cancel the slot's timer and arm it again (heapq: lazy, a push)."""
    name, p = peer
    slots = keepalives[0].tolist()
    if name == "heapq":
        later = [100 * STEP_NS + LEASE_NS] * len(slots)
        benchmark.pedantic(p.arm, args=(slots, later), rounds=5, iterations=1)
    else:
        p.loop.now = 100 * STEP_NS / 1e9
        benchmark.pedantic(p.arm, args=(slots, LEASE_NS / 1e9), rounds=5, iterations=1)
    _per_op(benchmark, record, f"restart_{name}_ns", len(slots))


@pytest.mark.benchmark(group="timers-cancel")
def test_peer_cancel(benchmark, record, sizes, peer) -> None:  # type: ignore[no-untyped-def]
    name, p = peer
    cohorts = iter(_cohorts(sizes.streams, sizes.seed + 24))

    def setup():  # type: ignore[no-untyped-def]
        return (next(cohorts),), {}

    benchmark.pedantic(p.cancel, setup=setup, rounds=ROUNDS, iterations=1)
    _per_op(benchmark, record, f"cancel_{name}_ns", sizes.streams // GROUPS)


@pytest.mark.benchmark(group="timers-fire")
def test_peer_fire(benchmark, record, sizes, peer) -> None:  # type: ignore[no-untyped-def]
    """Each round fires the next cohort (1 % of the timers), the table's advance's work."""
    name, p = peer
    rounds = iter(range(GROUPS))

    def setup():  # type: ignore[no-untyped-def]
        g = next(rounds)
        if name == "heapq":
            return (g * STEP_NS + LEASE_NS,), {}
        return (g * STEP_NS / 1e9 + LEASE_NS / 1e9,), {}

    fired = p.fire(*setup()[0])
    assert fired == len(_cohorts(sizes.streams, sizes.seed + 21)[0])
    benchmark.pedantic(p.fire, setup=setup, rounds=ROUNDS, iterations=1)
    _per_op(benchmark, record, f"fire_{name}_ns", sizes.streams // GROUPS)


@pytest.mark.benchmark(group="timers-bytes")
def test_bytes_per_armed_timer(benchmark, record, sizes) -> None:  # type: ignore[no-untyped-def]
    """Memory each structure holds per armed timer (tracemalloc; the table: its columns)."""
    n = min(sizes.streams, 100_000)
    layout = table_layout(sizes.streams, len(EVENTS), 0, 1)
    table = sum(dtype.itemsize * int(np.prod(shape)) for name, (dtype, shape) in layout.items()
                if name in ("deadlines", "clock", "timer_blocks"))
    heap = traced_bytes(lambda: _heap(n, 1)) / n
    aio = traced_bytes(lambda: _asyncio(n, 1), AsyncioTimers.close) / n
    assert 8 <= table / sizes.streams < 8.1
    assert heap > 50 and aio > heap  # a tuple and two ints per entry; a handle is bigger
    for name, value in (("bytes_table", table / sizes.streams), ("bytes_heapq", heap),
                        ("bytes_asyncio", aio)):
        record(name, value)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # measured above, with tracemalloc
