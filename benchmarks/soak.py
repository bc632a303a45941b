"""Soak: a long seeded run of random driver operations with invariants checked as it goes.

    python benchmarks/soak.py --ops 10000000 --seed 1      # the full soak (minutes)
    python benchmarks/soak.py --ops 300000                 # the short version CI runs

Every ``--check-every`` operations (default 100,000) it checks, over the driver's registry:

- occupancy counts equal the histogram of the state array (stream table and lease table);
- every live lease belongs to a Live stream (Active or Draining);
- at most one producer per stream, and the producer / consumer columns agree with the leases;
- epochs never decrease for any stream id, across idle cleanup and re-provisioning;
- memory is flat: ``sys.getallocatedblocks()`` stays within a small bound of the first check.

When the driver has shut down, a new driver generation starts (epochs restart with it). Exits 1
with a message on the first violated invariant or unexpected exception.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np

from streamhsm import FREE_SLOT, Driver, DriverConfig, DriverState, ResponseCode, Role, State

SEC = 1_000_000_000
STATIC = tuple(range(1, 101))
DYN = (1000, 1999)


class Violation(AssertionError):
    """An invariant did not hold."""


def new_driver(rng: np.random.Generator) -> Driver:
    return Driver(DriverConfig(
        static_stream_ids=STATIC, allow_dynamic_streams=True, dynamic_stream_id_range=DYN,
        lease_keepalive_interval_ns=SEC, lease_expiry_grace_intervals=3,
        shutdown_timeout_ns=2 * SEC, drain_on_producer_loss=bool(rng.integers(0, 2)),
        stream_capacity=600, lease_capacity=4000, outbox_capacity=8192))


def check(d: Driver, epochs: dict[int, int]) -> None:
    """Raise Violation if any invariant fails."""
    st = d.streams
    states = st.states
    hist = np.bincount(states[states != FREE_SLOT], minlength=256)
    for s in (State.INIT, State.ACTIVE, State.DRAINING, State.CLOSED):
        if st.count(s) != hist[s]:
            raise Violation(f"stream occupancy {s.name}={st.count(s)} != histogram {hist[s]}")
    lt = d._leases  # white-box: the soak checks the registry itself
    lhist = np.bincount(lt.states[lt.states != FREE_SLOT], minlength=256)
    for code in range(lt.machine.n_states):
        if lt.machine.is_leaf[code] and lt.count(code) != lhist[code]:
            raise Violation(f"lease occupancy {code} = {lt.count(code)} != histogram")
    col = d._core.column  # white-box: the core's read-only registry columns
    live = np.flatnonzero(col("lease_stream") >= 0)
    if len(live) != d.live_leases:
        raise Violation(f"{len(live)} lease rows in use, {d.live_leases} live leases")
    lease_slots = col("lease_stream")[live]
    stream_states = states[lease_slots]
    if not np.all((stream_states == State.ACTIVE) | (stream_states == State.DRAINING)):
        raise Violation("a live lease belongs to a stream that is not Live")
    roles = col("lease_role")[live]
    producers = np.bincount(lease_slots[roles == Role.PRODUCER], minlength=st.capacity)
    if producers.max(initial=0) > 1:
        raise Violation(f"stream slot {int(producers.argmax())} has {producers.max()} producers")
    open_slots = states != FREE_SLOT
    if not np.array_equal(producers[open_slots] == 1, col("producer")[open_slots] != 0):
        raise Violation("producer column disagrees with the live producer leases")
    consumers = np.bincount(lease_slots[roles == Role.CONSUMER], minlength=st.capacity)
    if not np.array_equal(consumers[open_slots], col("consumers")[open_slots]):
        raise Violation("consumer counts disagree with the live consumer leases")
    for sid in (*STATIC, *range(DYN[0], DYN[1] + 1)):
        e = d.epoch(sid)
        if e < epochs.get(sid, 0):
            raise Violation(f"epoch of stream {sid} went back from {epochs[sid]} to {e}")
        epochs[sid] = e
    if d.counters["lease_hsm_unhandled"] != 0:
        raise Violation(f"lease HSM unhandled events: {d.counters['lease_hsm_unhandled']}")


def soak(ops: int, seed: int = 1, check_every: int = 100_000, out=sys.stdout) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Run ``ops`` random operations; return totals. Raises Violation on a broken invariant."""
    rng = np.random.default_rng(seed)
    d = new_driver(rng)
    epochs: dict[int, int] = {}
    now = 0
    generations = 1
    totals = {"ok": 0, "rejected": 0, "expired": 0}
    kinds = rng.choice(8, size=ops, p=[0.30, 0.30, 0.12, 0.01, 0.05, 0.02, 0.00002, 0.19998])
    sids = rng.choice(np.array([*STATIC, *range(DYN[0], DYN[0] + 400), 5000]), size=ops)
    clients = rng.integers(1, 6000, size=ops)
    roles = rng.choice(np.array([Role.PRODUCER, Role.CONSUMER, Role.CONSUMER, Role.CONSUMER]),
                       size=ops)
    steps = rng.choice(np.array([0, 1_000, 100_000, 2_000_000]), size=ops)
    blocks0 = None
    t0 = time.perf_counter()
    for i in range(ops):
        now += int(steps[i])
        kind = kinds[i]
        last = d._core.last_lease_id
        lease = int(rng.integers(max(1, last - 4000), last + 2)) if last else 1
        if kind == 0:
            r = d.attach(int(sids[i]), int(roles[i]), int(clients[i]), now, create=True)
            totals["ok" if r else "rejected"] += 1
        elif kind in (1, 2):
            # mostly the lease's own client; every 8th call a random one (must be refused)
            ls = int(d._core.live_lease(lease, 0))
            own = ls >= 0 and i % 8 != 0
            cid = int(d._core.column("lease_client")[ls]) if own else int(clients[i])
            op = d.keepalive if kind == 1 else d.detach
            r = op(lease, now, client_id=cid)
            if ls >= 0 and not own and cid != int(d._core.column("lease_client")[ls]) and r:
                raise Violation(f"client {cid} acted on lease {lease} of another client")
        elif kind == 3:
            d.revoke(lease, now)
        elif kind == 4:
            totals["expired"] += d.poll(now)
        elif kind == 5:
            d.bump_epoch(int(sids[i]))
        elif kind == 6:
            if d.request_shutdown(now).code is not ResponseCode.OK:
                raise Violation("shutdown request refused")
        else:
            d.drain_revoked()
            d.drain_announces()
        if d.state is DriverState.STOPPED:
            check(d, epochs)
            d = new_driver(rng)
            epochs.clear()
            generations += 1
        if (i + 1) % check_every == 0:
            check(d, epochs)
            d.drain_revoked()
            d.drain_announces()
            gc.collect()
            blocks = sys.getallocatedblocks()
            if blocks0 is None:
                blocks0 = blocks
            elif blocks - blocks0 > 5_000:
                raise Violation(f"memory grew by {blocks - blocks0} blocks since the first check")
            if out is not None:
                c = d.counters
                print(f"{i + 1:>11,} ops {time.perf_counter() - t0:7.1f} s  gen={generations} "
                      f"live={d.live_leases} streams={len(d.streams)} "
                      f"expired={c['leases_expired']} bumps={c['epoch_bumps']} "
                      f"unhandled={c['stream_hsm_unhandled']}", file=out, flush=True)
    check(d, epochs)
    totals["generations"] = generations
    totals["seconds"] = int(time.perf_counter() - t0)
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check-every", type=int, default=100_000)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        totals = soak(args.ops, args.seed, args.check_every)
    except Violation as exc:
        print(f"SOAK FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"soak passed: {args.ops:,} operations in {time.perf_counter() - start:.1f} s, "
          f"seed {args.seed}, {totals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
