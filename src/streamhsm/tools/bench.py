"""``python -m streamhsm bench``: a short benchmark of every hot path beside its physical floor.

Each product operation is timed in the same run as the floor it is compared with (best of
several repeats, ``time.perf_counter``), and the ratio is reported with the target from the
performance plan. The full pytest-benchmark suites live in ``benchmarks/``.
"""

from __future__ import annotations

import json
import threading
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TextIO

import numpy as np

from ._floor import NoopTarget, broadcast_floor, table_floor
from ..driver import Driver, DriverConfig, Role
from ..lifecycle import Event, StreamLifecycle, StreamTable
from ..reference import ReferenceMachine

__all__ = ["Row", "format_rows", "plot_scaling", "run_bench"]

LEASE_EVENTS = np.array([Event.PRODUCER_ATTACHED, Event.CONSUMER_ATTACHED, Event.PRODUCER_DETACHED,
                         Event.CONSUMER_DETACHED, Event.EPOCH_BUMPED], np.uint8)


@dataclass
class Row:
    """One line of the report: an operation, its time per unit, its floor and the ratio."""

    operation: str
    unit: str
    time_ns: float
    floor: str = ""
    floor_ns: float | None = None
    target: str = ""

    @property
    def ratio(self) -> float | None:
        """time / floor (for a speed-up row, floor / time)."""
        if self.floor_ns is None or self.floor_ns <= 0:
            return None
        return self.time_ns / self.floor_ns

    def as_dict(self) -> dict[str, object]:
        """The row as plain data (for ``--json``)."""
        out = asdict(self)
        out["ratio"] = self.ratio
        return out


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _active_table(n: int) -> StreamTable:
    t = StreamTable(n)
    open_ = t.open
    for _ in range(n):
        open_()
    t.broadcast(Event.STREAM_PROVISIONED)
    return t


def _interleaved(stmts: dict[str, str], env: dict[str, object], number: int,
                 repeat: int) -> dict[str, float]:
    """Best ns per call of each statement, timed round by round in turn so that frequency
    changes and neighbours' load hit every statement alike."""
    timers = {name: timeit.Timer(stmt, globals=env) for name, stmt in stmts.items()}
    best = dict.fromkeys(stmts, float("inf"))
    for _ in range(repeat):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(number) / number * 1e9)
    return best


def bench_calls(repeat: int = 15, number: int = 100_000) -> list[Row]:
    """Single-event dispatch from Python beside the no-op call floor, and the reference speed-up."""
    t = _active_table(1000)
    m = StreamLifecycle()
    m.dispatch(Event.STREAM_PROVISIONED)
    ref = ReferenceMachine(m.machine.spec)
    ref.dispatch("StreamProvisioned")
    env: dict[str, object] = {"noop": NoopTarget(), "t": t, "m": m, "ref": ref,
                              "ev": Event.PRODUCER_ATTACHED}
    ns = _interleaved({"floor": "noop.dispatch(5, ev)", "table": "t.dispatch(5, ev)",
                       "life": "m.dispatch(ev)", "name": "m.dispatch('ProducerAttached')"},
                      env, number, repeat)
    reference = _interleaved({"ref": "ref.dispatch('ProducerAttached')"}, env, number // 10,
                             max(3, repeat // 3))["ref"]
    return [
        Row("StreamTable.dispatch", "call", ns["table"], "no-op cdef method", ns["floor"],
            "<= 1.5x"),
        Row("StreamLifecycle.dispatch", "call", ns["life"], "no-op cdef method", ns["floor"]),
        Row("reference interpreter", "call", reference, "StreamLifecycle.dispatch(name)",
            ns["name"], "speed-up = ratio"),
    ]


def bench_batches(streams: int, events: int, repeat: int = 5, seed: int = 1) -> list[Row]:
    """dispatch_many and broadcast beside the bare table loops, and the GIL-release check."""
    rng = np.random.default_rng(seed)
    slots = rng.integers(0, streams, events)
    evs = rng.choice(LEASE_EVENTS, events)
    t = _active_table(streams)
    nxt = t.machine.engine_tables.next_state
    states = t.states.copy()
    floor_many = _best(lambda: table_floor(states, nxt, slots, evs), repeat)
    many = _best(lambda: t.dispatch_many(slots, evs), repeat)
    # broadcasts that change every slot: Active <-> Draining under drain_on_producer_loss
    tog = StreamTable(streams, drain_on_producer_loss=True)
    for _ in range(streams):
        tog.open()
    tog.broadcast(Event.STREAM_PROVISIONED)
    tog_states = tog.states.copy()
    tog_next = tog.machine.engine_tables.next_state
    pair = (int(Event.PRODUCER_DETACHED), int(Event.PRODUCER_ATTACHED))
    floor_b = _best(lambda: [broadcast_floor(tog_states, tog_next, e) for e in pair], repeat) / 2
    bcast = _best(lambda: [tog.broadcast(e) for e in pair], repeat) / 2
    in_place = _best(lambda: t.broadcast(Event.EPOCH_BUMPED), repeat)
    del tog, tog_states
    t2 = _active_table(streams)

    def serial() -> None:
        t.dispatch_many(slots, evs)
        t2.dispatch_many(slots, evs)

    def threaded() -> None:
        threads = [threading.Thread(target=x.dispatch_many, args=(slots, evs)) for x in (t, t2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    ser = _best(serial, repeat)
    par = _best(threaded, repeat)
    per_stream = t.nbytes_per_slot
    return [
        Row(f"dispatch_many ({streams:,} streams)", "event", many / events * 1e9,
            "bare table loop", floor_many / events * 1e9, "<= 1.5x"),
        Row(f"broadcast ({streams:,} streams, every slot transitions)", "stream",
            bcast / streams * 1e9, "bare broadcast loop", floor_b / streams * 1e9, "<= 1.5x"),
        Row(f"broadcast handled in place ({streams:,} streams)", "broadcast", in_place * 1e9,
            "", None, "O(states): no slot changes"),
        Row("2 threads x dispatch_many, 2 tables", "batch pair", par * 1e9,
            "same work serially", ser * 1e9, "speed-up >= 1.6x (ratio <= 0.625)"),
        Row("per-stream state", "bytes", float(per_stream), "", None, "<= 32 bytes"),
    ]


def bench_driver(leases: int, repeat: int = 5) -> list[Row]:
    """Driver attach+detach cycle, keepalive, and poll over ``leases`` leases, 1 % expiring."""
    interval = 1000 * 10**9
    rounds = repeat
    cohort = max(1, leases // 100)
    total = leases + rounds * cohort
    d = Driver(DriverConfig(static_stream_ids=tuple(range(1, 1001)), stream_capacity=1000,
                            lease_capacity=total, lease_keepalive_interval_ns=interval,
                            outbox_capacity=total))
    client = 0
    for k in range(rounds):
        for _ in range(cohort):
            client += 1
            d.attach(1 + client % 1000, Role.CONSUMER, client, k)
    for _ in range(leases):
        client += 1
        d.attach(1 + client % 1000, Role.CONSUMER, client, rounds)
    lifetime = 3 * interval
    poll_times = []
    for k in range(rounds):
        start = time.perf_counter()
        d.poll(k + lifetime + 1)
        poll_times.append(time.perf_counter() - start)
        d.drain_revoked()
    small = Driver(DriverConfig(static_stream_ids=(7,), stream_capacity=4, lease_capacity=4))

    def cycle() -> None:
        r = small.attach(7, Role.PRODUCER, 42, 0)
        small.detach(r.lease_id, 0, client_id=42)
        small.drain_revoked()

    n_cycles = 20_000

    def cycles() -> None:
        for _ in range(n_cycles):
            cycle()

    cyc = _best(cycles, 3) / n_cycles
    lid = small.attach(7, Role.CONSUMER, 43, 0).lease_id

    def keepalives() -> None:
        for _ in range(n_cycles):
            small.keepalive(lid, 1, client_id=43)

    keep = _best(keepalives, 3) / n_cycles
    return [
        Row("driver attach+detach cycle", "cycle", cyc * 1e9),
        Row("driver keepalive", "call", keep * 1e9),
        Row(f"driver poll ({leases:,} leases, {cohort:,} expiring)", "poll",
            min(poll_times) * 1e9, "", None, "one vectorised pass"),
    ]


def run_bench(streams: int = 1_000_000, events: int = 10_000_000, leases: int = 1_000_000,
              out: TextIO | None = None) -> list[Row]:
    """Run the short suite; print progress to ``out``; return the rows."""
    rows: list[Row] = []
    parts: tuple[tuple[str, Callable[[], list[Row]]], ...] = (
        ("calls", bench_calls),
        ("batches", lambda: bench_batches(streams, events)),
        ("driver", lambda: bench_driver(leases)),
    )
    for name, fn in parts:
        if out is not None:
            print(f"measuring {name} ...", file=out, flush=True)
        rows.extend(fn())
    return rows


def _fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.2f} ns"


def format_rows(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table."""
    lines = ["| operation | time | per | floor | floor time | ratio | target |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        time_s = f"{r.time_ns:.0f}" if r.unit == "bytes" else _fmt_ns(r.time_ns)
        floor_s = "" if r.floor_ns is None else _fmt_ns(r.floor_ns)
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        lines.append(f"| {r.operation} | {time_s} | {r.unit} | {r.floor} | {floor_s} | {ratio} "
                     f"| {r.target} |")
    return "\n".join(lines)


def plot_scaling(path: str, sizes: Sequence[int] = (1_000, 10_000, 100_000, 1_000_000, 10_000_000),
                 events: int = 2_000_000, out: TextIO | None = None) -> list[dict[str, float]]:
    """Write a PNG of time per event against the number of streams (dispatch_many, broadcast and
    their floors). Needs matplotlib (``pip install "streamhsm[plot]"``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(
            'the plot needs matplotlib: python -m pip install "streamhsm[plot]"') from exc
    points = []
    rng = np.random.default_rng(1)
    for n in sizes:
        if out is not None:
            print(f"plot: {n:,} streams ...", file=out, flush=True)
        t = _active_table(n)
        slots = rng.integers(0, n, events)
        evs = rng.choice(LEASE_EVENTS, events)
        nxt = t.machine.engine_tables.next_state
        states = t.states.copy()
        points.append({
            "streams": n,
            "dispatch_many": _best(lambda: t.dispatch_many(slots, evs), 3) / events * 1e9,
            "table floor": _best(lambda: table_floor(states, nxt, slots, evs), 3) / events * 1e9,
            "broadcast": _best(lambda: t.broadcast(Event.EPOCH_BUMPED), 3) / n * 1e9,
            "broadcast floor": _best(lambda: broadcast_floor(states, nxt, 5), 3) / n * 1e9,
        })
        del t, states
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [p["streams"] for p in points]
    for key, style in (("dispatch_many", "o-"), ("table floor", "o--"), ("broadcast", "s-"),
                       ("broadcast floor", "s--")):
        ax.plot(xs, [p[key] for p in points], style, label=key)
    ax.set_xscale("log")
    ax.set_xlabel("streams")
    ax.set_ylabel("ns per event (broadcast: per stream)")
    ax.set_title("streamhsm: time per event vs number of streams")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return points


def write_json(path: str, rows: Sequence[Row], extra: dict[str, object] | None = None) -> None:
    """Write the rows (and ``extra``) as JSON."""
    data: dict[str, object] = {"rows": [r.as_dict() for r in rows]}
    if extra:
        data.update(extra)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
