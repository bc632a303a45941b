"""Transition-heavy dispatch_many (issue 11, target 2): the batch-local transition counts, the
occupancy derived from them and the per-slot unhandled counters are exact; the streaming
validation finds the first offender with every kernel and every dtype."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from streamhsm import Event, State, StreamTable, _testing
from streamhsm import _table as _engine

KERNELS = _engine._simd_supported()
N_STREAMS = 3000


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest) -> Iterator[str]:
    _engine._set_simd_kernel(request.param)
    try:
        yield request.param
    finally:
        _engine._set_simd_kernel("avx2")


def _table() -> StreamTable:
    t = StreamTable(N_STREAMS, drain_on_producer_loss=True)
    for _ in range(N_STREAMS):
        t.open()
    return t


def _reference(t: StreamTable, slots: np.ndarray, events: np.ndarray) -> dict[str, object]:
    """What dispatching the events one by one, in Python, over the machine's tables gives."""
    m = t.machine
    states = t.states.astype(np.int64)
    unhandled = t.unhandled.astype(np.int64)
    trans = t.transition_counts.astype(np.int64)
    kind_transition = (m.handled == 1) & (m.exit_path[:, :, 0] >= 0)
    handled = 0
    for s, e in zip(slots.tolist(), events.tolist(), strict=True):
        old = states[s]
        if not m.handled[old, e]:
            unhandled[s] += 1
            continue
        handled += 1
        if kind_transition[old, e]:
            trans[old, e] += 1
            states[s] = m.next_state[old, e]
    return {"states": states, "unhandled": unhandled, "transitions": trans, "handled": handled,
            "total": t.unhandled_total + len(slots) - handled}


def _check(t: StreamTable, ref: dict[str, object], handled: int) -> None:
    assert handled == ref["handled"]
    assert np.array_equal(t.states, ref["states"])  # type: ignore[arg-type]
    assert np.array_equal(t.unhandled, ref["unhandled"])  # type: ignore[arg-type]
    assert np.array_equal(t.transition_counts, ref["transitions"])  # type: ignore[arg-type]
    assert t.unhandled_total == ref["total"]
    for s in (State.INIT, State.ACTIVE, State.DRAINING, State.CLOSED):
        assert t.count(s) == int((t.states == s).sum()), s
    assert t.count(State.LIVE) == int(np.isin(t.states, [2, 3, 4]).sum())


@pytest.mark.parametrize("mix", ["toggle", "lease", "all"])
@pytest.mark.parametrize("n_events", [100, 2047, 2048, 5000, 40_000])
def test_batch_counters_are_exact(mix: str, n_events: int) -> None:
    rng = np.random.default_rng(n_events)
    t = _table()
    t.dispatch_many(np.arange(N_STREAMS // 2), np.zeros(N_STREAMS // 2, np.uint8))  # some Active
    choices = {"toggle": [1, 2], "lease": [1, 2, 3, 4, 5], "all": list(range(10))}[mix]
    slots = rng.integers(0, N_STREAMS, n_events)
    events = rng.choice(np.array(choices, np.uint8), n_events)
    ref = _reference(t, slots, events)
    _check(t, ref, t.dispatch_many(slots, events))


@pytest.mark.smoke
@pytest.mark.parametrize("sdt", [np.int32, np.int64])
@pytest.mark.parametrize("edt", [np.uint8, np.int32, np.int64])
def test_batch_counters_every_dtype(sdt: type, edt: type, kernel: str) -> None:
    rng = np.random.default_rng(5)
    t = _table()
    t.broadcast(Event.STREAM_PROVISIONED)
    slots = rng.integers(0, N_STREAMS, 9000).astype(sdt)
    events = rng.choice(np.array([1, 2, 3], edt), 9000)
    ref = _reference(t, slots.astype(np.int64), events.astype(np.int64))
    _check(t, ref, t.dispatch_many(slots, events))


@pytest.mark.parametrize("sdt", [np.int32, np.int64])
@pytest.mark.parametrize("edt", [np.uint8, np.int32, np.int64])
def test_validation_names_the_first_offender(sdt: type, edt: type, kernel: str) -> None:
    rng = np.random.default_rng(11)
    t = _table()
    before = t.states.copy()
    n = 5000
    for trial in range(40):
        slots = rng.integers(0, N_STREAMS, n).astype(sdt)
        events = rng.integers(0, 10, n).astype(edt)
        p, q = int(rng.integers(0, n)), int(rng.integers(0, n))
        slots[p] = [-1, N_STREAMS, N_STREAMS + 7][trial % 3]
        events[q] = [10, 200, 255][trial % 3] if edt is np.uint8 else [-1, 10, 2**20][trial % 3]
        if p < q:
            with pytest.raises(IndexError, match=rf"slots\[{p}\]: slot -?\d+ out of range"):
                t.dispatch_many(slots, events)
        else:
            with pytest.raises(ValueError, match=rf"events\[{q}\]: unknown event code"):
                t.dispatch_many(slots, events)
        assert np.array_equal(t.states, before) and t.unhandled_total == 0


def _rewrite_at_the_gate(t: StreamTable, slots: np.ndarray, events: np.ndarray,
                         at: int) -> list[BaseException]:
    """Run ``t.dispatch_many(slots, events)`` in a thread, paused before it runs; rewrite
    ``slots[at]`` out of range meanwhile; return what the batch raised."""
    _testing.pause_batches(t)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            t.dispatch_many(slots, events)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    th = threading.Thread(target=run)
    th.start()
    while not _testing.at_gate(t):
        pass
    slots[at] = -5
    _testing.resume_batches(t)
    th.join()
    return errors


def test_stop_mid_batch_keeps_counters_exact() -> None:
    """A caller that rewrites its slots while a batch validated before it runs (a table with
    more than HSM_SNAPSHOT_RATIO slots per event) runs it stops it at the bad index; the events
    before it are applied and counted (occupancy folded), the rest are not."""
    cap = 5 * 20_000  # more slots than 4 per event: validated before it runs
    t = StreamTable(cap, drain_on_producer_loss=True)
    ref_t = StreamTable(N_STREAMS, drain_on_producer_loss=True)
    for table in (t, ref_t):
        for _ in range(N_STREAMS):
            table.open()
        table.broadcast(Event.STREAM_PROVISIONED)
    rng = np.random.default_rng(3)
    slots = rng.integers(0, N_STREAMS, 20_000)
    events = rng.choice(np.array([1, 2], np.uint8), 20_000)
    ref = _reference(ref_t, slots[:12_345], events[:12_345])
    errors = _rewrite_at_the_gate(t, slots, events, 12_345)
    assert len(errors) == 1 and "the first 12345 events were dispatched" in str(errors[0])
    ref["total"] = 12_345 - ref["handled"]  # type: ignore[operator]
    ref["states"] = np.concatenate(  # type: ignore[call-overload]
        [ref["states"], np.full(cap - N_STREAMS, 255)])
    ref["unhandled"] = np.concatenate(  # type: ignore[call-overload]
        [ref["unhandled"], np.zeros(cap - N_STREAMS, np.int64)])
    _check(t, ref, ref["handled"])  # type: ignore[arg-type]


def test_rewrite_during_a_batch_validated_as_it_runs_undoes_it() -> None:
    """The same rewrite on a batch validated as it runs (at most 4 slots per event): it meets
    the bad index as it runs and undoes everything before it; nothing was dispatched."""
    t = _table()
    t.broadcast(Event.STREAM_PROVISIONED)
    rng = np.random.default_rng(3)
    slots = rng.integers(0, N_STREAMS, 20_000)
    events = rng.choice(np.array([1, 2, 4, 0], np.uint8), 20_000)  # 0: unhandled on Active
    before = (t.states.copy(), t.unhandled.copy(), t.transition_counts.copy())
    errors = _rewrite_at_the_gate(t, slots, events, 12_345)
    assert len(errors) == 1 and isinstance(errors[0], IndexError)
    assert str(errors[0]) == ("slots[12345]: slot -5 out of range for capacity 3000; nothing was "
                              "dispatched")
    assert np.array_equal(t.states, before[0]) and np.array_equal(t.unhandled, before[1])
    assert np.array_equal(t.transition_counts, before[2]) and t.unhandled_total == 0
    assert t.count(State.ACTIVE) == N_STREAMS


def test_traced_batch_counts_like_the_untraced_one() -> None:
    rng = np.random.default_rng(8)
    slots = rng.integers(0, N_STREAMS, 30_000)
    events = rng.choice(np.array([1, 2, 5], np.uint8), 30_000)
    a, b = _table(), _table()
    for t in (a, b):
        t.broadcast(Event.STREAM_PROVISIONED)
    b.enable_trace(64)
    assert a.dispatch_many(slots, events) == b.dispatch_many(slots, events)
    assert np.array_equal(a.states, b.states)
    assert np.array_equal(a.transition_counts, b.transition_counts)
    assert [a.count(s) for s in State] == [b.count(s) for s in State]
    tr = b.trace()
    assert len(tr) == 64 and tr["seq"][-1] == int(b.transition_counts.sum()) - N_STREAMS - 1
