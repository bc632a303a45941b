"""``python -m streamhsm demo``: a seeded driver simulation.

Clients attach to configured and on-demand streams, keep their leases alive, time out, detach and
come back; streams are remapped; then the driver drains and shuts down. Simulated time advances in
ticks; the driver only sees the ``now_ns`` it is given, so a run is reproducible from its seed.
"""

from __future__ import annotations

import time
from typing import TextIO

import numpy as np

from ..driver import Driver, DriverConfig, DriverState, Role
from ..lifecycle import State

__all__ = ["run_demo"]

SEC = 1_000_000_000
TICK = SEC // 4
_LEAVES = (State.INIT, State.ACTIVE, State.DRAINING, State.CLOSED)


def _states(d: Driver) -> str:
    t = d.streams
    return " ".join(f"{s.name.lower()}={t.count(s)}" for s in _LEAVES)


def run_demo(streams: int = 10_000, clients: int = 50_000, seed: int = 1, seconds: int = 20,
             out: TextIO | None = None, verbose: bool = True) -> dict[str, object]:
    """Simulate a driver with ``streams`` stream slots and ``clients`` clients for ``seconds``
    simulated seconds of traffic, then a drain and shutdown.

    A quarter of the streams are configured (static); the rest are created on demand. Each client
    attaches (15 % as producers), sends a keepalive every second; 10 % of clients are flaky (they go
    silent and their lease expires), others detach at random and re-attach a few seconds later.
    One stream in a hundred is remapped per second.

    Prints progress every 5 simulated seconds (when ``verbose``) and a final summary; returns the
    summary as a dict (states, stream slots, epochs, rejection reasons, counters). The rejection
    reasons add up to the ``attaches_rejected`` counter; ``stream_slots`` accounts for every
    provisioned stream: configured + created on demand == recycled (idle on-demand streams closed
    and their slots released for reuse) + held at the end. The same arguments give the same
    summary.

    Raises:
        TypeError: a number is not an int.
        ValueError: ``streams``, ``clients`` or ``seconds`` is below 1, ``seed`` below 0, or a
            number is too large for the driver configuration (its message names the field).
    """
    for name, value, low in (("streams", streams, 1), ("clients", clients, 1),
                             ("seconds", seconds, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    rng = np.random.default_rng(seed)
    wall0 = time.perf_counter()
    n_static = max(1, streams // 4)
    static_ids = tuple(range(10_000, 10_000 + n_static))
    dyn_first = max(20_000, static_ids[-1] + 1)  # disjoint from the static ids
    cfg = DriverConfig(static_stream_ids=static_ids, allow_dynamic_streams=True,
                       dynamic_stream_id_range=(dyn_first, dyn_first + 2 * streams),
                       stream_capacity=streams, lease_capacity=clients,
                       shutdown_token="demo", outbox_capacity=clients)
    d = Driver(cfg)

    def say(text: str) -> None:
        if verbose and out is not None:
            print(text, file=out, flush=True)

    # per-client plan, as numpy columns
    lease = np.zeros(clients, np.int64)
    flaky = rng.random(clients) < 0.10
    silent_at = rng.integers(2, max(3, seconds), clients) * SEC  # when a flaky client goes quiet
    next_move = rng.integers(1, max(2, seconds), clients) * SEC  # detach or re-attach time
    static_pick = rng.random(clients) < 0.7

    def pick_stream(c: int) -> int:
        if static_pick[c]:
            return static_ids[int(rng.integers(0, n_static))]
        return dyn_first + int(rng.integers(0, streams))

    rejected: dict[str, int] = {}

    def attach(c: int, now: int) -> None:
        role = Role.PRODUCER if rng.random() < 0.15 else Role.CONSUMER
        r = d.attach(pick_stream(c), role, c + 1, now, create=True)
        if r:
            lease[c] = r.lease_id
        else:
            rejected[r.reason] = rejected.get(r.reason, 0) + 1

    say(f"driver up: {n_static} configured streams, capacity {streams} streams / {clients} leases")
    for c in range(clients):
        attach(c, 0)
    say(f"t=0s attached {int((lease > 0).sum())} of {clients} clients; streams: {_states(d)}")

    notices = 0
    announced = 0
    now = 0
    end_traffic = seconds * SEC
    while now < end_traffic:
        now += TICK
        second_boundary = now % SEC == 0
        live = lease > 0
        if second_boundary:
            # keepalives from every live, non-silent client
            talking = np.flatnonzero(live & ~(flaky & (silent_at <= now)))
            for c in talking.tolist():
                d.keepalive(int(lease[c]), now, client_id=c + 1)
            # remaps
            for sid in rng.choice(static_ids, size=max(1, n_static // 100)).tolist():
                d.bump_epoch(sid)
        movers = np.flatnonzero(next_move <= now)
        for c in movers.tolist():
            if lease[c] > 0:
                d.detach(int(lease[c]), now, client_id=c + 1)
                lease[c] = 0
            else:
                attach(c, now)
            next_move[c] = now + int(rng.integers(1, 6)) * SEC
        d.poll(now)
        gone = d.drain_revoked()
        notices += len(gone)
        if len(gone):
            ended = np.isin(lease, gone["lease_id"])
            lease[ended] = 0
        announced += len(d.drain_announces())
        if now % (5 * SEC) == 0:
            say(f"t={now // SEC}s live leases={d.live_leases} streams: {_states(d)} "
                f"epoch bumps={d.counters['epoch_bumps']} expired={d.counters['leases_expired']}")

    say(f"t={now // SEC}s shutdown requested: {d.request_shutdown(now, token='demo').reason}")
    say(f"  streams: {_states(d)}")
    late = d.attach(static_ids[0], Role.CONSUMER, clients + 1, now)
    if not late:
        rejected[late.reason] = rejected.get(late.reason, 0) + 1
    say(f"  an attach during the drain: {late.code.name} ({late.reason})")
    while d.state is not DriverState.STOPPED:
        now += TICK
        for c in np.flatnonzero(lease > 0)[: clients // 100].tolist():  # some clients leave
            d.detach(int(lease[c]), now, client_id=c + 1)
            lease[c] = 0
        d.poll(now)
        notices += len(d.drain_revoked())
        announced += len(d.drain_announces())
    say(f"t={now / SEC:g}s driver {d.state.name}; streams: {_states(d)}")

    counters = dict(d.counters)
    epochs = np.array([d.epoch(s) for s in static_ids])
    provisioned = counters["streams_provisioned"]
    held = len(d.streams)  # slots still holding a stream (all Closed after the shutdown)
    slots = {
        "configured": n_static,
        "created_on_demand": provisioned - n_static,
        # on-demand streams that went idle were closed and their slots released for reuse
        "recycled": provisioned - held,
        "held_at_end": held,
    }
    summary: dict[str, object] = {
        "streams": {s.name.lower(): d.streams.count(s) for s in _LEAVES},
        "stream_slots": slots,
        "static_epoch_max": int(epochs.max()),
        "static_epoch_mean": round(float(epochs.mean()), 3),
        "revoke_notices": notices,
        "announces": announced,
        "rejected": dict(sorted(rejected.items())),
        "counters": counters,
    }
    if out is not None:
        print("summary:", file=out)
        print(f"  streams by state: {summary['streams']}", file=out)
        print(f"  streams provisioned: {provisioned} = {n_static} configured "
              f"+ {slots['created_on_demand']} created on demand", file=out)
        print(f"    {slots['recycled']} on-demand streams went idle: closed, and their slots "
              "released for reuse", file=out)
        print(f"    {held} slots still held at the end, all closed by the shutdown "
              "(the 'closed' count above)", file=out)
        print(f"  static stream epochs: max={summary['static_epoch_max']} "
              f"mean={summary['static_epoch_mean']}", file=out)
        print(f"  revoke notices={notices} announces={announced}", file=out)
        print(f"  attach rejections: {sum(rejected.values())} (= attaches_rejected, with the one "
              f"during the drain): {summary['rejected']}", file=out)
        for name, value in counters.items():
            print(f"  {name:<24} {value}", file=out)
        print(f"  ({time.perf_counter() - wall0:.1f} s wall clock)", file=out)
    return summary
