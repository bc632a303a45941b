"""Issue 22, target 3: large ``dispatch_many`` batches are validated as they run (the batch is
read from memory once) and undone on an invalid element: a snapshot of the state bytes (history
records, per-state counts) put back, the per-slot unhandled counts given back by replaying the
batch up to the element, the batch-local transition counts dropped. Atomic wherever the bad
element is (first, middle, last chunk, around a chunk boundary, after the commit point), and
every counter exact against the per-event path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhsm import FREE_SLOT, Event, MachineSpec, MachineTable, StreamTable

MAX = 2**63 - 1
CHUNK = 1024           # HSM_CHUNK of _batch.pxd
MIN_EVENTS = 2048      # HSM_LOCAL_MIN_EVENTS: smaller batches run event by event
CAP = 600              # at most 4 slots per event for every batch here: validated as it runs


def wide_flagged() -> Any:
    """Four flags and seven events: 256 << 4 rows x 7 events, more batch-local cells than the
    stack holds, so batches count in the table's scratch array (which an undo must clear)."""
    spec = MachineSpec("wide4", ["Go", "Back", "Swap", "Noop", "Miss", "Hop", "Stay"],
                       initial="A")
    for f in "abcd":
        spec.flag(f)
    spec.state("A").state("B").state("C")
    spec.on("A", "Go", "B", guard="a").on("A", "Go", "C", guard="!a")
    spec.on("B", "Back", "A").on("C", "Back", "A", guard="b")
    spec.on("B", "Swap", "C", guard="c").on("C", "Swap", "B", guard="!d")
    spec.on("Root", "Noop").on("A", "Miss", guard="d").on("B", "Hop", "B").on("C", "Stay")
    return spec.compile()


WIDE = wide_flagged()


def with_history() -> Any:
    """Top > Mid > {A, B}, Top > C, and Out: leaving Top records where a slot was (deep and
    shallow), coming back reads it; a flag picks the way back. History cells write records and
    count record-reading arrivals on the spot: an undo puts both back."""
    spec = MachineSpec("hist", ["Go", "Leave", "Deep", "Shallow", "Noop", "Miss", "Side"],
                       initial="Top")
    spec.flag("f")
    spec.state("Top", initial="Mid").state("Mid", "Top", initial="A")
    spec.state("A", "Mid").state("B", "Mid").state("C", "Top").state("Out")
    spec.on("A", "Go", "B").on("B", "Go", "A").on("Mid", "Side", "C", guard="f")
    spec.on("C", "Side", "Mid").on("Top", "Leave", "Out")
    spec.on("Out", "Deep", "Top", history="deep").on("Out", "Shallow", "Top", history="shallow")
    spec.on("Out", "Go", "Mid", history="shallow", guard="!f")
    spec.on("Root", "Noop").on("A", "Miss", guard="f")
    return spec.compile()


HIST = with_history()


def filled(t: MachineTable, free: bool) -> MachineTable:
    """``t`` with every slot open, then every 7th released if ``free``."""
    for _ in range(CAP):
        t.open()
    if free:
        for s in range(0, CAP, 7):
            t.release(s)
    return t


def stream_table(free: bool, seed: int = 0) -> MachineTable:
    """A drain-policy StreamTable of CAP slots, every 7th released if ``free``, about half of
    the open ones Active."""
    t = filled(StreamTable(CAP, drain_on_producer_loss=True), free)
    opened = open_slots(t)
    for s in opened[np.random.default_rng(seed).random(opened.size) < 0.5].tolist():
        t.dispatch(s, Event.STREAM_PROVISIONED)
    return with_counts(t, seed)


def flag_table(free: bool, seed: int = 0) -> MachineTable:
    """A table of the wide flagged machine, random flags on every open slot."""
    t = filled(MachineTable(WIDE, CAP), free)
    rng = np.random.default_rng(seed)
    opened = open_slots(t)
    for f in WIDE.flag_names:
        t.set_flag_many(opened, f, rng.random(opened.size) < 0.5)
    return with_counts(t, seed)


def history_table(free: bool, seed: int = 0) -> MachineTable:
    """A table of the history machine, random flags, some slots Out with records written."""
    t = filled(MachineTable(HIST, CAP), free)
    rng = np.random.default_rng(seed)
    opened = open_slots(t)
    t.set_flag_many(opened, "f", rng.random(opened.size) < 0.5)
    for s in opened[rng.random(opened.size) < 0.5].tolist():
        t.dispatch(s, "Go")
        t.dispatch(s, "Leave")
    return with_counts(t, seed)


def with_counts(t: MachineTable, seed: int) -> MachineTable:
    """``t`` with unhandled counts on its open slots already (an undo that gives back more
    than its batch took shows)."""
    snap = t.snapshot()
    opened = open_slots(t)
    snap["unhandled"][opened] = np.random.default_rng(seed).integers(0, 50, opened.size)
    snap["unhandled_total"] = int(snap["unhandled"].sum())
    t.restore(snap)
    return t


def open_slots(t: MachineTable) -> np.ndarray:
    return np.flatnonzero(np.asarray(t.states) != FREE_SLOT).astype(np.int64)


def everything(t: MachineTable) -> tuple[Any, ...]:
    """All the counters and states a batch can change."""
    records = tuple(t.history(o).tobytes() for o in t.machine.history_owners)
    return (t.states.tobytes(), t.unhandled.tobytes(), t.transition_counts.tobytes(),
            tuple(t.count(s) for s in t.machine.State), int(t.unhandled_total), len(t), records)


def per_event(t: MachineTable, slots: np.ndarray, events: np.ndarray) -> int:
    """The batch through the single-event path (hsm_step): the reference for its counters."""
    return sum(t.dispatch(s, e) for s, e in zip(slots.tolist(), events.tolist(), strict=True))


def traffic(t: MachineTable, n: int, rng: np.random.Generator,
            weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    opened = open_slots(t)
    n_events = len(t.machine.Event)
    p = None if weights is None else weights / weights.sum()
    return rng.choice(opened, n), rng.choice(np.arange(n_events, dtype=np.uint8), n, p=p)


def inject(t: MachineTable, slots: np.ndarray, events: np.ndarray, pos: int,
           kind: str) -> str:
    """Make element ``pos`` invalid; return the start of the message naming it."""
    if kind == "range":
        slots[pos] = t.capacity
        return rf"slots\[{pos}\]: slot {t.capacity} out of range"
    if kind == "negative":
        slots[pos] = -3
        return rf"slots\[{pos}\]: slot -3 out of range"
    if kind == "free":
        slots[pos] = int(np.flatnonzero(np.asarray(t.states) == FREE_SLOT)[0])
        return rf"slots\[{pos}\]: slot {int(slots[pos])} is not open"
    events[pos] = 200
    return rf"events\[{pos}\]: unknown event code 200"


# --------------------------------------------------------------------------- every position
N = 10 * CHUNK + 7
POSITIONS = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 3, 9 * CHUNK, N - 1]
MIXES = {  # toggle: half the events transition (branch-free chunks); lease: rare transitions
    "toggle": np.array([0, 6, 6, 0.5, 0.5, 0, 0, 0, 0, 0.05]),
    "lease": np.array([0.5, 0.2, 0.1, 2, 2, 4, 0, 0, 0, 0]),
}


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("kind", ["range", "event", "free"])
@pytest.mark.parametrize("mix", sorted(MIXES))
def test_bad_element_anywhere_changes_nothing(pos: int, kind: str, mix: str) -> None:
    """A bad element in the first, a middle or the last chunk, or on either side of a chunk
    boundary: the batch raises naming it and every state and counter is as before (the chunks
    before it ran, with transitions and unhandled events, and were undone)."""
    t = stream_table(free=True)
    slots, events = traffic(t, N, np.random.default_rng(pos), MIXES[mix])
    match = inject(t, slots, events, pos, kind)
    before = everything(t)
    with pytest.raises(IndexError if kind != "event" else ValueError,
                       match=match + ".*; nothing was dispatched"):
        t.dispatch_many(slots, events)
    assert everything(t) == before


@pytest.mark.parametrize("pos", [0, CHUNK, 7 * CHUNK + 5, N - 1])
@pytest.mark.parametrize("make", [flag_table, history_table])
def test_bad_element_on_flagged_and_history_machines(pos: int, make: Any) -> None:
    """The wide flagged machine counts in the table's scratch array: an undone batch leaves it
    all zero (the next batch's counters are exact). The history machine's batches write records
    and counts as they go: both are put back."""
    t, ref = make(free=False), make(free=False)
    rng = np.random.default_rng(pos)
    slots, events = traffic(t, N, rng)
    inject(t, slots, events, pos, "range")
    before = everything(t)
    with pytest.raises(IndexError, match=rf"slots\[{pos}\].*nothing was dispatched"):
        t.dispatch_many(slots, events)
    assert everything(t) == before
    slots, events = traffic(t, N, rng)
    assert t.dispatch_many(slots, events) == per_event(ref, slots, events)
    assert everything(t) == everything(ref)


# --------------------------------------------------------------------------- saturation
def test_counters_near_saturation_stay_exact() -> None:
    """Per-slot unhandled counters saturate at 2**63-1, and a replay cannot tell how many
    counts a saturated one took: a table restored with a counter above 2**62 validates its
    batches before they run (a saturated counter stays saturated, one 2 below stays there)."""
    t = stream_table(free=False)
    init = [int(s) for s in open_slots(t) if t.states[s] == t.machine.State.INIT][:4]
    snap = t.snapshot()
    snap["unhandled"][init[:2]] = [MAX, MAX - 2]
    snap["unhandled_total"] = MAX
    t.restore(snap)
    slots = np.resize(np.array(init, np.int64), 3 * CHUNK)
    events = np.full(slots.size, Event.PRODUCER_ATTACHED, np.uint8)  # unhandled in Init
    slots[-1] = CAP
    before = everything(t)
    with pytest.raises(IndexError, match=r"slots\[3071\]"):
        t.dispatch_many(slots, events)
    assert everything(t) == before
    slots[-1] = init[0]
    start = [int(u) for u in t.unhandled[init]]
    t.dispatch_many(slots, events)
    assert list(t.unhandled[init]) == [MAX, MAX, start[2] + 768, start[3] + 767]


# --------------------------------------------------------------------------- commit points
@pytest.mark.parametrize("pos", [None, 20_000, 39_999])
def test_unhandled_heavy_batches_undo_exactly(pos: int | None) -> None:
    """All-unhandled traffic: 40,000 per-slot counts taken on 40 chunks, every one given back
    by the undo; without a bad element every counter is exact."""
    t, ref = stream_table(free=True), stream_table(free=True)
    init = np.array([s for s in open_slots(t) if t.states[s] == t.machine.State.INIT])
    rng = np.random.default_rng(9)
    slots = rng.choice(init, 40_000)
    events = rng.choice(np.array([1, 2, 3, 4, 5], np.uint8), 40_000)  # unhandled in Init
    if pos is None:
        assert t.dispatch_many(slots, events) == per_event(ref, slots, events) == 0
        assert everything(t) == everything(ref)
        return
    match = inject(t, slots, events, pos, "free")
    before = everything(t)
    with pytest.raises(IndexError, match=match):
        t.dispatch_many(slots, events)
    assert everything(t) == before


def test_commit_point_before_the_first_fold() -> None:
    """A batch longer than HSM_FOLD_EVENTS (2**24) folds its counts into the table's before it
    ends: the rest is validated first, so a bad element after the fold changes nothing."""
    t = stream_table(free=False)
    n = (1 << 24) + 3 * CHUNK
    slots = np.resize(open_slots(t).astype(np.int32), n)
    events = np.resize(np.array([1, 2], np.uint8), n)
    events[-1] = 77
    before = everything(t)
    with pytest.raises(ValueError, match=rf"events\[{n - 1}\]: unknown event code 77"):
        t.dispatch_many(slots, events)
    assert everything(t) == before


# --------------------------------------------------------------------------- differential
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_batches_match_the_per_event_path(data: st.DataObject) -> None:
    """Random large batches (random event mixes, free slots or none, saturated counters)
    against the same events one by one: equal counters; with an invalid element injected at a
    chunk edge or anywhere, the batch raises naming it and changes nothing, and the next batch
    is exact again."""
    make = data.draw(st.sampled_from([stream_table, flag_table, history_table]), label="machine")
    free = data.draw(st.booleans(), label="free slots")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    t, ref = make(free, seed), make(free, seed)
    rng = np.random.default_rng(seed)
    if data.draw(st.booleans(), label="saturated"):
        for table in (t, ref):
            snap = table.snapshot()
            snap["unhandled"][open_slots(table)[:3]] = [MAX, MAX - 1, MAX - 5]
            snap["unhandled_total"] = MAX
            table.restore(snap)
    n = data.draw(st.integers(MIN_EVENTS, 6 * CHUNK), label="n")
    weights = rng.random(len(t.machine.Event)) ** data.draw(st.sampled_from([0.2, 1.0, 4.0]))
    slots, events = traffic(t, n, rng, weights)
    pos = data.draw(st.sampled_from([None, 0, CHUNK - 1, CHUNK, n // 2, n - 1,
                                     int(rng.integers(0, n))]), label="bad at")
    if pos is not None:
        kinds = ["range", "negative", "event"] + (["free"] if free else [])
        kind = data.draw(st.sampled_from(kinds), label="kind")
        match = inject(t, slots, events, pos, kind)
        before = everything(t)
        with pytest.raises((IndexError, ValueError), match=match):
            t.dispatch_many(slots, events)
        assert everything(t) == before
        slots, events = traffic(t, n, rng, weights)
    assert t.dispatch_many(slots, events) == per_event(ref, slots, events)
    assert everything(t) == everything(ref)
