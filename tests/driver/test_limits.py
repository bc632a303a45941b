"""Counters, epochs and lease ids at their limits (issue 19 class 10, driver side).

The rule (docs/design.md, "Counters and limits"): counters saturate at 2**63 - 1; an epoch or a
lease id never passes 2**63 - 1, and the operation that would need one more is refused with a
clear answer and changes nothing. Every snapshot the driver produces restores, except one whose
restart would have to give a Live stream at the maximum epoch a new one (refused, named)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streamhsm import COUNTER_NAMES, Driver, DriverConfig, LeaseState, ResponseCode, Role
from streamhsm.snapshot import SnapshotError

MAX = 2**63 - 1
SEC = 1_000_000_000


def driver() -> Driver:
    d = Driver(DriverConfig(static_stream_ids=(1, 2), allow_dynamic_streams=True,
                            dynamic_stream_id_range=(100, 101), stream_capacity=4,
                            lease_capacity=4))
    d.attach(1, Role.PRODUCER, 10, 0)
    d.attach(1, Role.CONSUMER, 11, 0)
    return d


def slot(d: Driver, sid: int) -> int:
    return int(d._core.slot_of(sid))


def with_epoch(sid: int, epoch: int) -> Driver:
    """A driver restored from a snapshot whose stream ``sid`` had ``epoch`` (restarts bump it)."""
    d = driver()
    snap = d.snapshot()
    snap["epoch"][slot(d, sid)] = epoch
    return Driver.restore(snap)


def frozen(d: Driver) -> tuple[Any, ...]:
    cols = d._core.columns_copy()
    cols.pop("counters")
    return (tuple(a.tobytes() for a in cols.values()), d.streams.states.tobytes(),
            d._leases.states.tobytes(), d.now_ns, d._core.last_lease_id)


def test_counters_saturate_and_the_snapshot_restores() -> None:
    d = driver()
    snap = d.snapshot()
    snap["counters"][:] = MAX
    r = Driver.restore(snap)
    r.attach(2, Role.CONSUMER, 12, 1)
    r.attach(2, Role.CONSUMER, 12, 1)  # rejected: client holds a lease
    r.keepalive(1, 2, client_id=10)
    r.detach(1, 3, client_id=10)  # a producer detach: detached, bumps, notice
    r.bump_epoch(2)
    counters = r.counters
    for name in COUNTER_NAMES[:-2]:
        assert counters[name] == MAX, name
    again = Driver.restore(r.snapshot())
    assert again.counters["attaches_ok"] == MAX


def test_a_live_epoch_reaches_the_maximum_and_is_then_refused() -> None:
    d = with_epoch(2, MAX - 1)  # the restart bump gives stream 2 the last epoch
    assert d.epoch(2) == MAX
    before = frozen(d)
    r = d.bump_epoch(2)
    assert r.code is ResponseCode.REJECTED
    assert r.reason == f"epoch of stream 2 is at its maximum {MAX}"
    a = d.attach(2, Role.PRODUCER, 12, d.now_ns)  # (a refused attach still moves the clock)
    assert a.code is ResponseCode.REJECTED and "epoch of stream 2 is at its maximum" in a.reason
    assert frozen(d) == before
    assert d.attach(2, Role.CONSUMER, 12, 1)  # consumers need no new epoch
    # the driver's own snapshot: a restart would need epoch MAX + 1 for stream 2
    with pytest.raises(SnapshotError, match="epoch at stream slot .* is at its maximum"):
        Driver.restore(d.snapshot())


def test_a_producer_whose_stream_is_at_the_maximum_cannot_end_and_nothing_changes() -> None:
    d = driver()
    snap = d.snapshot()
    snap["epoch"][slot(d, 1)] = MAX - 1
    d = Driver.restore(snap)
    assert d.epoch(1) == MAX
    before = frozen(d)
    for call in (lambda: d.detach(1, 5, client_id=10), lambda: d.revoke(1, 5)):
        r = call()
        assert r.code is ResponseCode.REJECTED and "epoch of stream 1 is at its maximum" in r.reason
        assert frozen(d) == before
    with pytest.raises(OverflowError, match="epoch of stream 1 is at its maximum"):
        d.poll(100 * SEC)  # the producer's lease expired: its end would need a new epoch
    assert frozen(d) == before and d.lease_state(1) is LeaseState.ACTIVE
    assert d.detach(2, 6, client_id=11)  # the consumer's lease ends as usual


def test_a_closed_stream_at_the_maximum_restores_and_cannot_be_created_again() -> None:
    d = Driver(DriverConfig(allow_dynamic_streams=True, dynamic_stream_id_range=(100, 101),
                            stream_capacity=2, lease_capacity=2))
    d.attach(100, Role.CONSUMER, 10, 0, create=True)
    d.detach(1, 1, client_id=10)  # idle: Closed, waiting for recycling
    snap = d.snapshot()
    snap["epoch"][slot(d, 100)] = MAX
    snap["dyn_epoch"][0] = MAX
    r = Driver.restore(snap)  # a Closed stream needs no new epoch
    before = frozen(r)
    a = r.attach(100, Role.CONSUMER, 11, r.now_ns, create=True)
    assert a.code is ResponseCode.REJECTED and "epoch of stream 100 is at its maximum" in a.reason
    assert frozen(r) == before
    assert Driver.restore(r.snapshot()).epoch(100) == MAX


def test_the_last_lease_id_restores_and_the_next_attach_is_refused() -> None:
    d = driver()
    snap = d.snapshot()
    snap["last_lease_id"] = MAX
    r = Driver.restore(snap)
    before = frozen(r)
    a = r.attach(2, Role.CONSUMER, 12, r.now_ns)
    assert a.code is ResponseCode.REJECTED
    assert a.reason == f"lease ids exhausted (last lease id {MAX})"
    assert frozen(r) == before and r.counters["attaches_rejected"] == 1
    assert r.keepalive(1, 1, client_id=10)  # existing leases keep working
    assert Driver.restore(r.snapshot()).counters["attaches_rejected"] == 1


def test_max_time_is_computed_once() -> None:
    cfg = DriverConfig(shutdown_timeout_ns=7, lease_keepalive_interval_ns=5,
                       lease_expiry_grace_intervals=3)
    assert Driver(cfg).max_time_ns == cfg.max_time_ns == MAX - 1 - 15
    snap = Driver(cfg).snapshot()
    snap["now_ns"] = cfg.max_time_ns
    assert Driver.restore(snap).now_ns == cfg.max_time_ns
    snap["now_ns"] = cfg.max_time_ns + 1
    with pytest.raises(SnapshotError,
                       match=f"'now_ns' must be an int between 0 and {cfg.max_time_ns}"):
        Driver.restore(snap)


def test_counters_restored_at_the_maximum_stay_plain_ints() -> None:
    d = driver()
    snap = d.snapshot()
    snap["counters"][:] = np.int64(MAX)
    assert all(type(v) is int and v >= 0 for v in Driver.restore(snap).counters.values())
