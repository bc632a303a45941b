"""``python -m streamhsm demo``: a seeded stream-lifecycle scenario on a :class:`StreamTable`."""

from __future__ import annotations

import time
from typing import TextIO

import numpy as np

from .lifecycle import Event, State, StreamTable

__all__ = ["run_demo"]

_LEAVES = (State.INIT, State.ACTIVE, State.DRAINING, State.CLOSED)


def _summary(table: StreamTable) -> str:
    parts = [f"{s.name.lower()}={table.count(s)}" for s in _LEAVES]
    return " ".join(parts) + f" live={table.count(State.LIVE)} unhandled={table.unhandled_total}"


def run_demo(streams: int = 10_000, seed: int = 1, out: TextIO | None = None,
             verbose: bool = True) -> dict[str, int]:
    """Drive ``streams`` streams through provisioning, attach/detach traffic, epoch bumps, idle
    close, a driver drain (with detaches during the drain) and shutdown.

    Prints one line per phase (when ``verbose``) and a final summary; returns the final counts
    per leaf state plus ``unhandled``. The same seed gives the same output.
    """
    rng = np.random.default_rng(seed)
    table = StreamTable(streams)
    t0 = time.perf_counter()

    def phase(name: str) -> None:
        if verbose and out is not None:
            print(f"{name:<34} {_summary(table)}", file=out)

    slots = np.array([table.open() for _ in range(streams)], dtype=np.int64)
    phase("opened")
    provisioned = slots[rng.random(streams) < 0.95]
    table.dispatch_many(provisioned, np.full(provisioned.size, Event.STREAM_PROVISIONED, np.uint8))
    phase("provisioned (95%)")

    n = 20 * streams
    traffic = rng.choice(
        np.array([Event.PRODUCER_ATTACHED, Event.CONSUMER_ATTACHED, Event.CONSUMER_DETACHED,
                  Event.PRODUCER_DETACHED, Event.EPOCH_BUMPED], dtype=np.uint8),
        size=n, p=[0.2, 0.35, 0.3, 0.1, 0.05])
    handled = table.dispatch_many(rng.choice(slots, size=n), traffic)
    phase(f"attach/detach/epoch ({n} events)")
    if verbose and out is not None:
        print(f"{'':<34} handled={handled} of {n}", file=out)

    idle = rng.choice(provisioned, size=streams // 10, replace=False)
    table.dispatch_many(idle, np.full(idle.size, Event.STREAM_IDLE, np.uint8))
    phase("idle streams closed (10%)")
    for s in idle[: idle.size // 2]:
        table.release(int(s))
    phase("half of the closed slots released")

    table.broadcast(Event.DRIVER_DRAINING)
    phase("DriverDraining broadcast")
    live = table.slots_in(State.LIVE)
    detach = rng.choice(live, size=min(live.size, streams), replace=True)
    table.dispatch_many(detach, rng.choice(
        np.array([Event.PRODUCER_DETACHED, Event.CONSUMER_DETACHED], np.uint8), size=detach.size))
    phase("lease ends during the drain")
    table.broadcast(Event.DRIVER_SHUTDOWN)
    phase("DriverShutdown broadcast")

    result = {s.name.lower(): table.count(s) for s in _LEAVES}
    result["unhandled"] = table.unhandled_total
    if out is not None:
        elapsed = time.perf_counter() - t0
        print(f"summary: streams={streams} open={len(table)} " + _summary(table)
              + f" ({elapsed * 1e3:.1f} ms)", file=out)
    return result
