"""The advance scan (``hsm_advance_block`` in ``_timer_kernel.pxd``) tests the deadlines of eight
slots at once and fires only the groups with a due timer. A one-slot table never has a whole
group (it fires its slot directly), so a large table must fire exactly what one one-slot table
per slot fires: the same events at the same times in slot order, the same states, deadlines and
skipped periods, on one-timer and three-timer machines, with due timers in every position of a
group and a table size that is not a multiple of a group or a block."""

from __future__ import annotations

import numpy as np
import pytest

from streamhsm import FIRED_DTYPE, MachineSpec, MachineTable
from streamhsm.compiler import CompiledMachine

EVENTS = ["Keepalive", "Expire", "Tick", "Back"]


def machine(timers: int) -> CompiledMachine:
    s = MachineSpec(f"scan{timers}", EVENTS, "Live")
    s.state("Live", initial="A").state("A", "Live", initial="A1")
    s.state("A1", "A").state("A2", "A").state("B", "Live")
    s.after("A", 5000, "Expire")
    s.on("A", "Keepalive", restart="A.Expire").on("A", "Expire", "B")
    s.on("A1", "Tick", "A2").on("A2", "Tick", "A1").on("B", "Back", "A")
    if timers > 1:
        s.every("A1", 700, "Tick").after("B", 3000, "Back")
    return s.compile()


def _drive(big: MachineTable, singles: list[MachineTable],
           rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The same random advances and keepalives on the big table and on the one-slot tables
    (slot ``s`` of the big one is ``singles[s]``); what each fired."""
    n = len(singles)
    together, alone = [], []
    one, keepalive = np.zeros(1, np.int64), np.zeros(1, np.uint8)
    out = np.zeros(4 * n, FIRED_DTYPE)
    now = 0
    for _ in range(40):
        now += int(rng.choice([1, 50, 400, 1200, 6000]))
        k = big.advance(now, out)
        assert k <= len(out)
        together.append(out[:k].copy())
        for s, t in enumerate(singles):
            k = t.advance(now, out)
            alone += [(int(r["time_ns"]), s, int(r["timer"]), int(r["event"])) for r in out[:k]]
        hit = np.flatnonzero(rng.random(n) < 0.3)
        big.dispatch_many(hit, np.zeros(len(hit), np.uint8))
        for s in hit:
            singles[s].dispatch_many(one, keepalive)
    return np.concatenate(together), alone


@pytest.mark.parametrize("timers", [1, 3])
@pytest.mark.parametrize("n", [2500, 1031])
def test_grouped_scan_fires_what_each_slot_fires_alone(timers: int, n: int) -> None:
    m = machine(timers)
    rng = np.random.default_rng(timers * 7919 + n)
    big = MachineTable(m, n)
    singles = [MachineTable(m, 1) for _ in range(n)]
    for t in [big, *singles]:
        for _ in range(t.capacity):
            t.open()
    # keepalives at scattered times so that due timers sit anywhere in a group
    records, alone = _drive(big, singles, rng)
    together = [(int(r["time_ns"]), int(r["slot"]), int(r["timer"]), int(r["event"]))
                for r in records]
    assert len(together) > n // 2  # the scenario fires plenty
    # per advance the big table lists slots in ascending order; the multiset of (time, slot,
    # timer, event) and each slot's own sequence are those of the one-slot tables
    assert sorted(together) == sorted(alone)
    for s in range(0, n, 97):
        assert [x for x in together if x[1] == s] == [x for x in alone if x[1] == s]
    np.testing.assert_array_equal(big.states, np.concatenate([t.states for t in singles]))
    for name in [d.name for d in m.spec.timers]:
        np.testing.assert_array_equal(
            big.deadlines(name), np.concatenate([t.deadlines(name) for t in singles]))
    assert big.skipped_periods == tuple(
        sum(col) for col in zip(*(t.skipped_periods for t in singles), strict=True))
    assert big.now_ns == singles[0].now_ns


def test_grouped_scan_lists_slots_in_ascending_order() -> None:
    t = MachineTable(machine(3), 3000)
    for _ in range(3000):
        t.open()
    out = np.zeros(20_000, FIRED_DTYPE)
    # per slot: Tick at 700 (A1 -> A2 cancels it), Expire at 5000 (-> B, Back armed at 8000),
    # Back at 8000 (-> A1: Expire at 13000, Tick at 8700), Tick at 8700
    assert t.advance(10_000, out) == 4 * 3000
    assert (np.diff(out["slot"][:12_000]) >= 0).all()
    np.testing.assert_array_equal(out["time_ns"][:4], [700, 5000, 8000, 8700])
    np.testing.assert_array_equal(out["slot"][:12_000], np.repeat(np.arange(3000), 4))
