"""What the timer benchmarks measure (``benchmarks/test_bench_timers.py`` and ``python -m
streamhsm bench``): a lease-like machine on a large table whose deadlines are spread so that
each ``advance`` fires 1 % of the slots, and the two timer structures a Python user would
otherwise pick, each holding one timer per stream: an ``asyncio`` event loop (``call_later`` /
``TimerHandle.cancel`` per stream, run on a fake clock so that firing is deterministic) and a
``heapq`` of ``(deadline, slot)`` with lazy deletion.

Private module: the benchmark scenarios, not API.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from .._table import MachineTable
from ..compiler import CompiledMachine
from ..machine import MachineSpec

__all__ = ["EVENTS", "GROUPS", "LEASE_NS", "STEP_NS", "AsyncioTimers", "HeapTimers",
           "lease_machine", "plot_timers", "spread_table", "traced_bytes"]

T = TypeVar("T")

#: The lease machine's events, in code order.
EVENTS = ("Keepalive", "Expire", "Detach")
#: The lease lifetime: a lease expires this long after its last keepalive.
LEASE_NS = 3_000_000_000
#: :func:`spread_table` keeps the slots alive in this many cohorts, :data:`STEP_NS` apart: each
#: cohort's deadline fires 1 % of the slots.
GROUPS = 100
STEP_NS = 1000


def lease_machine(timers: bool = True) -> CompiledMachine:
    """``Live > {Active, Expired}``: Active owns the one-shot ``Active.Expire`` (after
    :data:`LEASE_NS`), which ``Keepalive`` restarts; ``Expire`` and ``Detach`` end in Expired
    (Detach cancels the timer by leaving Active). ``timers=False``: the same machine without the
    timer (Keepalive handled in place, nothing armed)."""
    s = MachineSpec("lease_timed" if timers else "lease_untimed", list(EVENTS), "Live")
    s.state("Live", initial="Active").state("Active", "Live").state("Expired", "Live")
    if timers:
        s.after("Active", LEASE_NS, "Expire")
        s.on("Active", "Keepalive", restart="Active.Expire")
    else:
        s.on("Active", "Keepalive")
    s.on("Active", "Expire", "Expired").on("Live", "Detach", "Expired")
    return s.compile()


def spread_table(n: int, seed: int, timers: bool = True) -> MachineTable:
    """A table of ``n`` open leases kept alive in :data:`GROUPS` random cohorts at clocks
    ``0, STEP_NS, ...``: cohort ``g`` expires at ``LEASE_NS + g * STEP_NS``, so advancing to
    that time fires exactly cohort ``g`` (1 % of the slots), in random slot positions."""
    t = MachineTable(lease_machine(timers), n)
    open_ = t.open
    for _ in range(n):
        open_()
    perm = np.random.default_rng(seed).permutation(n).astype(np.int64)
    keepalive = np.zeros(-(-n // GROUPS), np.uint8)
    for g, cohort in enumerate(np.array_split(perm, GROUPS)):
        if timers:
            t.advance(g * STEP_NS)
        t.dispatch_many(cohort, keepalive[:len(cohort)])
    return t


def traced_bytes(build: Callable[[], T], dispose: Callable[[T], object] | None = None) -> int:
    """Bytes ``build()`` leaves allocated (tracemalloc), its result kept alive while measured and
    then passed to ``dispose`` (if given)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    if dispose is not None:
        dispose(kept)
    return after - before


class HeapTimers:
    """One timer per stream in a ``heapq`` of ``(deadline, slot)``: arming pushes an entry and
    records the slot's deadline; cancelling forgets the deadline (the entry stays: lazy
    deletion); firing pops every due entry and, if it is still the slot's deadline, applies the
    expiry (``states[slot] = EXPIRED``)."""

    EXPIRED = 2

    def __init__(self, n: int) -> None:
        self.heap: list[tuple[int, int]] = []
        self.deadline: list[int | None] = [None] * n
        self.states = bytearray(n)

    def arm(self, slots: list[int], deadlines: list[int]) -> None:
        """Arm (or re-arm) the timer of each slot to its deadline."""
        heap, deadline, push = self.heap, self.deadline, heapq.heappush
        for s, d in zip(slots, deadlines, strict=True):
            deadline[s] = d
            push(heap, (d, s))

    def cancel(self, slots: list[int]) -> None:
        """Cancel the timer of each slot."""
        deadline = self.deadline
        for s in slots:
            deadline[s] = None

    def fire(self, now: int) -> int:
        """Pop every entry due at ``now``; expire the slots whose timer it still is."""
        heap, deadline, states, pop, expired = self.heap, self.deadline, self.states, \
            heapq.heappop, self.EXPIRED
        fired = 0
        while heap and heap[0][0] <= now:
            d, s = pop(heap)
            if deadline[s] == d:
                deadline[s] = None
                states[s] = expired
                fired += 1
        return fired


def _noop() -> None:
    pass


class _FakeClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is :attr:`now` (set by the caller): ``call_later`` arms
    from it and ``_run_once`` fires what it makes due, without sleeping."""

    now = 0.0

    def time(self) -> float:
        return self.now


class AsyncioTimers:
    """One ``loop.call_later`` handle per stream: arming calls ``call_later(delay, expire,
    slot)``, cancelling ``handle.cancel()``, firing runs the loop once on a fake clock (its
    callbacks apply the expiry, ``states[slot] = EXPIRED``). Times are seconds (asyncio's)."""

    EXPIRED = 2

    def __init__(self, n: int) -> None:
        self.loop = _FakeClockLoop()
        self.handles: list[asyncio.TimerHandle | None] = [None] * n
        self.states = bytearray(n)
        self.fired = 0

    def close(self) -> None:
        """Close the loop."""
        self.loop.close()

    def _expire(self, slot: int) -> None:
        self.handles[slot] = None
        self.states[slot] = self.EXPIRED
        self.fired += 1

    def arm(self, slots: list[int], delay: float) -> None:
        """Arm (or re-arm: cancel, then arm) the timer of each slot ``delay`` s from now."""
        handles, later, expire = self.handles, self.loop.call_later, self._expire
        for s in slots:
            h = handles[s]
            if h is not None:
                h.cancel()
            handles[s] = later(delay, expire, s)

    def cancel(self, slots: list[int]) -> None:
        """Cancel the timer of each slot."""
        handles = self.handles
        for s in slots:
            h = handles[s]
            if h is not None:
                h.cancel()
                handles[s] = None

    def fire(self, now: float) -> int:
        """Move the fake clock to ``now`` and run the loop once: every due callback runs (a
        ready no-op first, so that the loop polls its selector without waiting)."""
        self.loop.now = now
        before = self.fired
        self.loop.call_soon(_noop)
        self.loop._run_once()  # type: ignore[attr-defined]
        return self.fired - before


def plot_timers(path: str, rows: Sequence[Any]) -> None:
    """Draw the timer rows of ``streamhsm.tools.bench.bench_timers`` (ns per restart and per
    fire, bytes per armed timer: the table, heapq, asyncio; log scales) into ``path`` (needs
    matplotlib, the ``plot`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {r.operation.split(" (")[0]: r for r in rows}
    restart = by["asyncio call_later + cancel"]
    fire = by["asyncio fire"]
    peers = ("streamhsm table", "heapq", "asyncio")
    ns = {"restart (keepalive)": (restart.floor_ns, by["heapq push, lazy cancel"].time_ns,
                                  restart.time_ns),
          "fire (1 % due)": (fire.floor_ns, by["heapq fire"].time_ns, fire.time_ns)}
    memory = (8.0, by["heapq memory per armed timer"].time_ns,
              by["asyncio memory per armed timer"].time_ns)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), width_ratios=(2, 1))
    width = 0.27
    for i, peer in enumerate(peers):
        xs = [j + (i - 1) * width for j in range(len(ns))]
        left.bar(xs, [v[i] for v in ns.values()], width, label=peer)
    left.set_xticks(range(len(ns)), list(ns))
    left.set_yscale("log")
    left.set_ylabel("ns per operation")
    left.legend()
    right.bar(peers, memory, color=["C0", "C1", "C2"])
    right.set_yscale("log")
    right.set_ylabel("bytes per armed timer")
    for ax in (left, right):
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.suptitle("one timer per stream: the table's deadline column vs heapq and asyncio")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
