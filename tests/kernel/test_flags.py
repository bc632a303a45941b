"""Flags in the compiled engine (issue 13): every dispatch path reads each slot's own flags, the
packed copy the batch kernels read always equals ``MachineTable.flags``, counters stay per
(state, event), traces name the guarded handler, snapshots and shared tables carry flags, and a
flag-free machine keeps its tables and fingerprint."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from streamhsm import MachineInstance, MachineTable, SnapshotError
from streamhsm.compiler import CompiledMachine
from streamhsm.machine import MachineSpec
from streamhsm.registry import V02_FINGERPRINTS, by_fingerprint, known, machine
from streamhsm.snapshot import SNAPSHOT_VERSION, current_fingerprint

EVENTS = ["Go", "Back", "Tick", "Stop"]


def flagged(k: int) -> CompiledMachine:
    """A machine with ``k`` flags whose every flag changes some transition: ``Go`` in ``A`` goes
    to ``B`` under f0, else to ``C`` under f1 (k >= 2), else is handled by ``Top`` in place;
    ``Tick`` in ``B`` goes back to ``A`` unless f_{k-1}; ``Back`` in ``B`` goes to ``C`` under
    f0, else to ``A``; ``Stop`` is unhandled under !f0 in C and outside C."""
    spec = MachineSpec(f"flags{k}", EVENTS, initial="A")
    for i in range(k):
        spec.flag(f"f{i}")
    spec.state("Top", initial="A").state("A", "Top").state("B", "Top").state("C", "Top")
    spec.on("A", "Go", "B", guard="f0")
    if k >= 2:
        spec.on("A", "Go", "C", guard="f1")
    spec.on("Top", "Go")
    spec.on("B", "Tick", "A", guard=f"!f{k - 1}")
    spec.on("B", "Back", "C", guard="f0").on("B", "Back", "A").on("C", "Back", "A")
    spec.on("C", "Stop", "A", guard="f0")
    spec.on("Top", "Tick")
    return spec.compile()


def _full(m: CompiledMachine, cap: int, rng: np.random.Generator) -> MachineTable:
    t = MachineTable(m, cap)
    for _ in range(cap):
        t.open()
    for name in m.flag_names:
        t.set_flag_many(np.arange(cap), name, rng.random(cap) < 0.5)
    return t


def _same(a: MachineTable, b: MachineTable) -> None:
    for column in ("states", "flags", "unhandled", "transition_counts"):
        np.testing.assert_array_equal(getattr(a, column), getattr(b, column), err_msg=column)
    assert a.unhandled_total == b.unhandled_total and a.stats() == b.stats()


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("cap", [1, 7, 13, 3001])
def test_every_path_reads_each_slots_own_flags(k: int, cap: int) -> None:
    """dispatch_many's chunk kernels (packed flags, batches >= 2048 events), dispatch (the flag
    byte) and one MachineInstance per slot agree, for every packing (1, 2, 4 or 8 slots a byte)
    and capacities that are not multiples of 8; then again after release/open, set_flag and a
    restore rebuilt the packed copy."""
    m = flagged(k)
    rng = np.random.default_rng(k * 1000 + cap)
    batch, single = _full(m, cap, rng), MachineTable(m, cap)
    for _ in range(cap):
        single.open()
    instances = [MachineInstance(m) for _ in range(cap)]
    for s in range(cap):
        for i, name in enumerate(m.flag_names):
            value = bool(batch.flags[s] >> i & 1)
            single.set_flag(s, name, value)
            instances[s].set_flag(name, value)
    for round_ in range(3):
        slots = rng.integers(0, cap, 4096)
        events = rng.integers(0, len(EVENTS), 4096).astype(np.uint8)
        handled = batch.dispatch_many(slots, events)
        assert handled == sum(single.dispatch(int(s), int(e))
                              for s, e in zip(slots, events, strict=True))
        for s, e in zip(slots, events, strict=True):
            instances[int(s)].dispatch(int(e))
        _same(batch, single)
        assert [int(i.current) for i in instances] == batch.states.tolist()
        assert [i.flags for i in instances] == batch.flags.tolist()
        # change flags by every way there is, the same on both tables and the instances
        s = int(rng.integers(cap))
        name = m.flag_names[round_ % k]
        for t in (batch, single):
            t.set_flag(s, name, not t.flag(s, name))
        instances[s].set_flag(name, not instances[s].flag(name))
        for t in (batch, single):
            t.release(s)
            assert t.flags[s] == 0
            assert t.open() == s and t.flags[s] == 0
        instances[s] = MachineInstance(m)
        restored = MachineTable(m, cap)
        restored.restore(batch.snapshot())
        batch = restored


@pytest.mark.smoke
@pytest.mark.parametrize("k", [1, 2, 4])
def test_broadcast_uses_each_slots_flags(k: int) -> None:
    m = flagged(k)
    rng = np.random.default_rng(k)
    a = _full(m, 301, rng)
    b = MachineTable(m, 301)
    for s in range(301):
        b.open()
        for name in m.flag_names:
            b.set_flag(s, name, a.flag(s, name))
    a.release(5)
    b.release(5)
    for e in [0, 2, 1, 3, 0, 3]:
        assert a.broadcast(e) == sum(b.dispatch(s, e) for s in range(301) if b.is_open(s))
        _same(a, b)
    assert len(set(a.states.tolist())) > 2  # the flags split the slots over several states


def test_trace_names_the_guarded_handler_and_counts_stay_per_state_and_event() -> None:
    m = flagged(2)
    t = MachineTable(m, 3)
    for _ in range(3):
        t.open()
    t.set_flag(0, "f0", True)   # Go: A's first handler -> B
    t.set_flag(1, "f1", True)   # Go: A's second handler -> C
    t.enable_trace(8)           # slot 2: no flag, Go handled in place by Top (no transition)
    assert t.dispatch_many(np.arange(3), np.zeros(3, np.uint8)) == 3
    A, B, C, Top = (m.state_code(n) for n in ("A", "B", "C", "Top"))
    assert t.states.tolist() == [B, C, A]
    rows = t.trace()
    assert [(int(r["slot"]), int(r["to_state"]), int(r["handled_by"])) for r in rows] == [
        (0, B, A), (1, C, A)]
    assert m.handler[0b00, A, 0] == Top and m.handler[0b10, A, 0] == A
    # two transitions from (A, Go) under different flags: one (state, event) counter
    assert t.transition_counts[A, 0] == 2 and t.transition_counts.sum() == 2
    assert t.transition_counts.shape == (m.n_states, m.n_events)


def test_dispatch_never_changes_flags() -> None:
    m = flagged(3)
    t = _full(m, 64, np.random.default_rng(3))
    before = t.flags.copy()
    rng = np.random.default_rng(4)
    t.dispatch_many(rng.integers(0, 64, 5000), rng.integers(0, 4, 5000).astype(np.uint8))
    for e in range(4):
        t.broadcast(e)
        t.dispatch(0, e)
    np.testing.assert_array_equal(t.flags, before)
    with pytest.raises(ValueError, match="read-only"):
        t.flags[0] = 1


def test_snapshots_carry_flags_and_version_2_loads_with_flags_clear() -> None:
    m = flagged(2)
    t = _full(m, 20, np.random.default_rng(5))
    t.release(3)
    snap = t.snapshot()
    assert snap["version"] == SNAPSHOT_VERSION == 5 and snap["flags"].dtype == np.uint8
    u = MachineTable(m, 20)
    u.restore(snap)
    _same(t, u)
    old = dict(snap, version=2)
    del old["flags"]
    u.restore(old)
    assert not u.flags.any() and (u.states == t.states).all()
    missing = dict(snap)
    del missing["flags"]
    with pytest.raises(SnapshotError, match="'flags' must be uint8 of shape"):
        u.restore(missing)
    for bad, slot in ((np.uint8(4), 0), (np.uint8(1), 3)):  # a third flag bit; a free slot
        flags = snap["flags"].copy()
        flags[slot] = bad
        before = u.snapshot()
        with pytest.raises(SnapshotError, match=f"snapshot flags {int(bad)} at slot {slot}"):
            u.restore(dict(snap, flags=flags))
        assert all(np.array_equal(before[k], v) if isinstance(v, np.ndarray) else before[k] == v
                   for k, v in u.snapshot().items())


def test_a_shared_table_carries_its_flags_column() -> None:
    from streamhsm.shm import SharedStreamTable, open_readonly

    name = f"streamhsm-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    with SharedStreamTable(name, 10) as t:
        t.open()
        with open_readonly(name) as r:
            flags = r.flags
            assert flags.dtype == np.uint8 and flags.shape == (10,)
            np.testing.assert_array_equal(flags, t.flags)


@pytest.mark.parametrize(("name", "policy"), known())
def test_flag_free_machines_keep_their_tables_and_fingerprints(name: str, policy: str) -> None:
    """The fingerprints of the built-in (flag-free) machines as releases 0.1 (commit 032e80c)
    and 0.2 computed them are still recognised (they map to today's, which also cover the
    initial state and the exit/entry paths): snapshots and shared tables written then match."""
    import streamhsm.driver  # noqa: F401  (registers the driver's machines)

    before = {("stream", "default"): "5bacb95cd39a373f",
              ("stream", "drain_on_producer_loss"): "ae2a68c5bd3baf05",
              ("lease", "default"): "026b09ffebcaabdb", ("driver", "default"): "22c8a7f699304ad0"}
    m = machine(name, policy)
    assert m.n_flags == 0 and m.next_state.ndim == 2 and m.exit_path.ndim == 3
    assert m.engine_tables.next_state.shape == (256, m.n_events)
    assert V02_FINGERPRINTS[(name, policy)] == before[(name, policy)] != m.fingerprint
    assert by_fingerprint(before[(name, policy)]) == (name, policy, m)
    assert current_fingerprint(before[(name, policy)]) == m.fingerprint
