"""Memory safety of the engine under hostile callers and racing threads (issue 9, items 3-5).

The thread tests are deterministic: ``_testing.pause_batches`` stops every batch after it has
validated its input, holding the table lock with the GIL released, so a test can line up other
threads behind it (``_testing.waiters`` counts them) before letting it go. The only waits are
bounded polls for a condition that a correct build reaches at once; none asserts on time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamhsm import FREE_SLOT, Event, State, StreamTable, TableFullError, _testing
from streamhsm._views import readonly_view
from streamhsm.compiler import table_layout

E, S = Event, State


def _consistent(t: StreamTable) -> None:
    """Occupancy, open count and free list agree with the state bytes."""
    states = t.states
    assert len(t) == int((states != FREE_SLOT).sum())
    for s in (S.INIT, S.ACTIVE, S.DRAINING, S.CLOSED):
        assert t.count(s) == int((states == s).sum())
    free = t.snapshot()["free"]
    assert sorted(free.tolist()) == np.flatnonzero(states == FREE_SLOT).tolist()


# --------------------------------------------------------------------------- item 3: views
def test_views_cannot_be_made_writeable_again() -> None:
    t = StreamTable(4)
    s = t.open()
    for view in (t.states, t.unhandled, t.transition_counts):
        assert not view.flags.writeable
        with pytest.raises(ValueError, match="WRITEABLE"):
            view.flags.writeable = True
    states = t.states
    t.dispatch(s, E.STREAM_PROVISIONED)  # zero-copy: the view follows the table
    assert states[s] == S.ACTIVE and t.transition_counts[S.INIT, E.STREAM_PROVISIONED] == 1


def test_readonly_view_is_zero_copy_and_checks_its_argument() -> None:
    arr = np.arange(12, dtype=np.int64).reshape(3, 4)
    view = readonly_view(arr)
    assert view.shape == (3, 4) and view.dtype == np.int64 and np.shares_memory(view, arr)
    arr[1, 2] = -5
    assert view[1, 2] == -5
    with pytest.raises(ValueError, match="WRITEABLE"):
        view.flags.writeable = True
    assert readonly_view(np.zeros(0, np.uint8)).size == 0
    with pytest.raises(TypeError, match="needs a numpy array, got list"):
        readonly_view([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="C-contiguous"):
        readonly_view(arr[:, ::2])


def _shared_arrays(capacity: int) -> dict[str, np.ndarray]:
    return {name: np.empty(shape, dtype)
            for name, (dtype, shape) in table_layout(capacity, len(Event)).items()}


def test_release_never_overflows_the_free_list_whatever_the_state_bytes_say() -> None:
    """Caller-provided storage stays writeable by its owner: an open code written into a free
    slot must not make release() push past the end of the free list."""
    arrays = _shared_arrays(4)
    t = StreamTable(4, arrays=arrays)
    arrays["states"][0] = S.INIT  # every slot is free, but slot 0 now "looks" open
    with pytest.raises(RuntimeError, match="free list is full"):
        t.release(0)
    assert len(t) == 0


def test_open_never_trusts_a_corrupted_free_list() -> None:
    arrays = _shared_arrays(4)
    t = StreamTable(4, arrays=arrays)
    arrays["free"][3] = 2**30  # the next slot open() would take
    with pytest.raises(RuntimeError, match="free list entry 1073741824 does not name a free slot"):
        t.open()
    arrays["free"][3] = 0
    arrays["states"][0] = S.ACTIVE  # names a slot that is not free
    with pytest.raises(RuntimeError, match="free list entry 0 does not name a free slot"):
        t.open()
    assert len(t) == 0


# --------------------------------------------------------------------------- item 4: the lock
def _active_table(n: int, capacity: int | None = None) -> StreamTable:
    t = StreamTable(n if capacity is None else capacity, drain_on_producer_loss=True)
    for _ in range(n):
        t.open()
    t.broadcast(E.STREAM_PROVISIONED)
    return t


def _toggle_batch(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each of slots 0..n-1 goes Active -> Draining -> Active (drain_on_producer_loss)."""
    slots = np.repeat(np.arange(n, dtype=np.int64), 2)
    events = np.tile(np.array([E.PRODUCER_DETACHED, E.PRODUCER_ATTACHED], np.uint8), n)
    return slots, events


def test_every_mutator_waits_for_a_running_batch(paused_batch: Any) -> None:
    """While a batch holds the lock, open, release, dispatch, dispatch_many and broadcast all wait
    (state unchanged); afterwards each has run exactly once."""
    t = _active_table(6, capacity=8)
    batch = paused_batch(t, *_toggle_batch(6))
    before = t.states.copy()
    calls = [
        batch.queue(t.open),
        batch.queue(lambda: t.release(5)),
        batch.queue(lambda: t.dispatch(0, E.DRIVER_DRAINING)),
        batch.queue(lambda: t.dispatch_many(np.array([1], np.int64),
                                            np.array([E.CLOSE], np.uint8))),
        batch.queue(lambda: t.broadcast(E.EPOCH_BUMPED)),
    ]
    assert (t.states == before).all() and _testing.waiters(t) == len(calls)
    batch.resume()
    for c in calls:
        c.join()
    assert batch.call.error is None and all(c.error is None for c in calls), [
        c.error for c in calls]
    assert batch.call.result == 12
    assert t.state(0) is S.DRAINING and t.state(1) is S.CLOSED
    assert t.is_open(calls[0].result) and len(t) == 6  # open may reuse slot 5 if it ran last
    _consistent(t)


def test_two_threads_never_take_the_last_slot(paused_batch: Any) -> None:
    """Both openers wait behind a batch with one slot free: exactly one gets it (the free count is
    checked after the wait, under the lock)."""
    t = _active_table(3, capacity=4)
    batch = paused_batch(t, *_toggle_batch(3))
    openers = [batch.queue(t.open), batch.queue(t.open)]
    batch.resume()
    for c in openers:
        c.join()
    results = sorted((c.error is None, type(c.error).__name__) for c in openers)
    assert results == [(False, "TableFullError"), (True, "NoneType")]
    assert isinstance([c.error for c in openers if c.error][0], TableFullError)
    assert len(t) == 4
    _consistent(t)


def _freed_behind_the_lock(t: StreamTable, arrays: dict[str, np.ndarray], slot: int) -> None:
    """Free ``slot`` the way a batch holding the lock does (a driver core ending a lease calls
    ``release_unchecked``): here the test writes the caller-provided state byte itself."""
    arrays["states"][slot] = FREE_SLOT


@pytest.mark.parametrize("call", ["release", "dispatch"])
def test_slot_is_checked_after_the_wait(call: str, paused_batch: Any) -> None:
    """A slot freed while the caller waited for the lock is refused ("not open"), not used."""
    arrays = _shared_arrays(4)
    t = StreamTable(4, drain_on_producer_loss=True, arrays=arrays)
    for _ in range(3):
        t.dispatch(t.open(), E.STREAM_PROVISIONED)
    batch = paused_batch(t, *_toggle_batch(2))
    fn = (lambda: t.release(2)) if call == "release" else (lambda: t.dispatch(2, E.CLOSE))
    waiting = batch.queue(fn)
    _freed_behind_the_lock(t, arrays, 2)
    batch.resume()
    waiting.join()
    assert isinstance(waiting.error, IndexError), waiting.error
    assert str(waiting.error) == "slot 2 is not open"
    assert t.states[2] == FREE_SLOT and t.transition_counts[S.ACTIVE, E.CLOSE] == 0


# --------------------------------------------------------------------------- item 5: inputs
@pytest.mark.parametrize(("column", "value"), [("slots", 2**40), ("slots", -1), ("events", 200)])
def test_arrays_rewritten_during_dispatch_many_stop_the_batch(column: str, value: int,
                                                             paused_batch: Any) -> None:
    """Another thread rewrites the caller's array between validation and run: the batch stops
    before the bad index with IndexError (no crash); what ran before it stays applied."""
    t = _active_table(4)
    slots, events = _toggle_batch(4)
    batch = paused_batch(t, slots, events)
    (slots if column == "slots" else events)[3] = value
    batch.resume()
    err = batch.call.error
    assert isinstance(err, IndexError), err
    assert "the first 3 events were dispatched" in str(err)
    assert "changed during the batch" in str(err)
    assert t.state(0) is S.ACTIVE and t.state(1) is S.DRAINING  # events 0..2 ran
    assert t.count(S.DRAINING) == 1 and t.count(S.ACTIVE) == 3
    _consistent(t)


# --------------------------------------------------------------------------- GIL release
N_GIL = 1 << 20


def _observe_partial(t: StreamTable, run: Callable[[int], None]) -> bool:
    """Run ``run(k)`` for k = 0, 1, ... (each call moves every slot of ``t`` to the other of
    Active / Draining) while another Python thread copies the states, holding the GIL, and looks
    for a mix of the two: a mix can only be seen if that thread ran while a batch was half done,
    that is, if the batch released the GIL. Stops at the first mix (at most 40 batches)."""
    seen = threading.Event()
    stop = threading.Event()

    def observer() -> None:
        view = memoryview(t.states)
        while not stop.is_set():
            snap = bytes(view)  # one memcpy with the GIL held (numpy copies may release it)
            draining = snap.count(int(S.DRAINING).to_bytes(1, "little"))
            if 0 < draining < N_GIL:
                seen.set()
                return

    th = threading.Thread(target=observer, daemon=True)
    th.start()
    try:
        for k in range(40):
            run(k)
            if seen.is_set():
                break
    finally:
        stop.set()
        th.join()
    return seen.is_set()


def test_dispatch_many_releases_the_gil() -> None:
    t = _active_table(N_GIL)
    slots = np.arange(N_GIL, dtype=np.int64)
    go = (np.full(N_GIL, E.PRODUCER_DETACHED, np.uint8),
          np.full(N_GIL, E.PRODUCER_ATTACHED, np.uint8))
    assert _observe_partial(t, lambda k: t.dispatch_many(slots, go[k % 2]))


def test_broadcast_releases_the_gil() -> None:
    # the scalar kernel: the SIMD one (same nogil block) is over before the observer can look
    from streamhsm import _table as _engine

    t = _active_table(N_GIL)
    go = (E.PRODUCER_DETACHED, E.PRODUCER_ATTACHED)
    _engine._set_simd_kernel("scalar")
    try:
        assert _observe_partial(t, lambda k: t.broadcast(go[k % 2]))
    finally:
        _engine._set_simd_kernel("avx2")
