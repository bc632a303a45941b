"""The driver on timers (issue 21): lease expiry is the lease machine's ``expiry`` timer that
Keepalive restarts, the shutdown timeout the driver machine's ``shutdown`` timer; every lease
call and poll first moves the lease table's clock."""

from __future__ import annotations

import numpy as np
import pytest

from streamhsm import NEVER, ResponseCode, RevokeReason, Role
from streamhsm.driver import Driver, DriverConfig, DriverState, LeaseState

TTL = 300


def driver(**kw: object) -> Driver:
    cfg = dict(static_stream_ids=(1, 2), lease_keepalive_interval_ns=100,
               lease_expiry_grace_intervals=3, shutdown_timeout_ns=50)
    cfg.update(kw)
    return Driver(DriverConfig(**cfg))  # type: ignore[arg-type]


def test_the_lease_table_holds_the_expiry_one_nanosecond_after_it() -> None:
    d = driver()
    a = d.attach(1, Role.CONSUMER, 7, 10)
    assert a.expiry_ns == 10 + TTL == d.lease_expiry(a.lease_id)
    deadlines = d._leases.deadlines("expiry")
    assert deadlines[0] == 10 + TTL + 1 and (deadlines[1:] == NEVER).all()
    assert d.keepalive(a.lease_id, 50, client_id=7)
    assert d.lease_expiry(a.lease_id) == 50 + TTL and deadlines[0] == 50 + TTL + 1
    assert not hasattr(d._core, "lease_expiry") and "lease_expiry" not in d._core.columns_copy()


@pytest.mark.parametrize("call", ["keepalive", "detach", "keepalive_many", "attach"])
def test_any_lease_call_after_the_expiry_ends_the_lease_first(call: str) -> None:
    d = driver()
    a = d.attach(1, Role.PRODUCER, 7, 0)
    b = d.attach(2, Role.CONSUMER, 8, 0)
    live_through = TTL  # live through its last keepalive plus the TTL...
    assert d.keepalive(b.lease_id, live_through, client_id=8).code == ResponseCode.OK
    assert d.lease_state(a.lease_id) is LeaseState.ACTIVE
    now = live_through + 1  # ...and expired one nanosecond later, whichever call comes
    epoch = d.epoch(1)
    if call == "keepalive":
        r = d.keepalive(a.lease_id, now, client_id=7)
        assert (r.code, r.reason) == (ResponseCode.REJECTED, "lease ended")
    elif call == "detach":
        r = d.detach(a.lease_id, now, client_id=7)
        assert (r.code, r.reason) == (ResponseCode.OK, "lease already ended")
    elif call == "keepalive_many":
        rows = d.keepalive_many(np.array([a.lease_id], np.int64), now,
                                client_ids=np.array([7], np.int64))
        assert rows["code"].tolist() == [ResponseCode.REJECTED]
    else:
        assert d.attach(2, Role.CONSUMER, 9, now).code == ResponseCode.OK
    assert d.lease_state(a.lease_id) is LeaseState.CLOSED
    assert d.counters["leases_expired"] == 1 and d.epoch(1) == epoch + 1  # producer loss
    notices = d.drain_revoked()
    assert notices["lease_id"].tolist() == [a.lease_id]
    assert notices["reason"].tolist() == [RevokeReason.EXPIRED]
    assert notices["time_ns"].tolist() == [now]
    assert d.poll(now) == 0  # poll counts what expired in its own advance only


def test_poll_counts_what_it_expires() -> None:
    d = driver()
    leases = [d.attach(1, Role.CONSUMER, c, 0).lease_id for c in (1, 2, 3)]
    assert d.keepalive(leases[2], 200, client_id=3).code == ResponseCode.OK
    assert d.poll(TTL) == 0
    assert d.poll(TTL + 1) == 2
    assert [d.lease_state(x) for x in leases] == [LeaseState.CLOSED] * 2 + [LeaseState.ACTIVE]


def test_the_shutdown_timer_ends_the_drain_at_request_plus_timeout() -> None:
    d = driver()
    assert d._lifecycle.deadlines("shutdown") == NEVER
    assert d.request_shutdown(100).code == ResponseCode.OK
    assert d._lifecycle.deadlines("shutdown") == 150 == d.snapshot()["shutdown_deadline"]
    d.poll(149)
    assert d.state is DriverState.DRAINING
    d.poll(150)
    assert d.state is DriverState.STOPPED and d.shutdown_notice.stopped_ns == 150


def test_a_zero_shutdown_timeout_stops_at_the_next_poll_even_at_the_same_time() -> None:
    d = driver(shutdown_timeout_ns=0)
    assert d.request_shutdown(5).code == ResponseCode.OK
    assert d.request_shutdown(5).reason == "already draining"  # a request never fires it
    assert d.state is DriverState.DRAINING
    d.poll(5)
    assert d.state is DriverState.STOPPED


def test_a_draining_snapshot_restores_its_shutdown_timer() -> None:
    d = driver()
    d.attach(1, Role.CONSUMER, 7, 0)
    d.request_shutdown(20)
    d.poll(40)
    e = Driver.restore(d.snapshot())
    assert e._lifecycle.deadlines("shutdown") == 70
    e.poll(69)
    assert e.state is DriverState.DRAINING
    e.poll(70)
    assert e.state is DriverState.STOPPED


def test_a_draining_snapshot_with_a_deadline_no_request_could_give_is_refused() -> None:
    from streamhsm import SnapshotError

    d = driver()
    d.request_shutdown(20)
    snap = d.snapshot()
    for bad in (49, 10_000):  # before the timeout itself, after now + timeout
        snap["shutdown_deadline"] = bad
        with pytest.raises(SnapshotError, match=f"shutdown deadline {bad} must be"):
            Driver.restore(snap)


def test_a_snapshot_from_before_timers_keeps_its_expiries() -> None:
    """A 0.2-style snapshot (a lease_expiry column, lease tables without timers): live leases
    keep their expiry; one whose expiry passed without a poll expires at the next call after
    the snapshot's time."""
    d = driver()
    a = d.attach(1, Role.CONSUMER, 7, 0)
    b = d.attach(2, Role.CONSUMER, 8, 0)
    d.keepalive(b.lease_id, 250, client_id=8)
    snap = d.snapshot()
    expiry = np.full(d.config.lease_capacity, NEVER, np.int64)
    expiry[:2] = [TTL - 5, 250 + TTL]  # lease a: overdue at the snapshot's time
    snap["lease_expiry"] = expiry
    for key in ("leases.now_ns", "leases.deadlines", "leases.skipped"):
        del snap[key]
    snap["leases.version"] = 4
    from streamhsm.driver.machines import driver_machine, lease_machine
    from streamhsm.lifecycle import stream_machine

    snap["fingerprint"] = "/".join(m.fingerprint for m in (
        stream_machine(False), lease_machine(), driver_machine()))
    snap["leases.fingerprint"] = lease_machine().fingerprint
    snap["now_ns"] = TTL  # lease a's expiry (TTL - 5) is before it
    e = Driver.restore(snap)
    assert e.lease_expiry(b.lease_id) == 250 + TTL
    assert e.lease_state(a.lease_id) is LeaseState.ACTIVE
    assert e.poll(TTL + 1) == 1 and e.lease_state(a.lease_id) is LeaseState.CLOSED


def test_each_stream_is_announced_on_its_own_phase() -> None:
    d = Driver(DriverConfig(static_stream_ids=(1,), allow_dynamic_streams=True,
                            dynamic_stream_id_range=(100, 200), announce_period_ns=100))
    assert d.drain_announces().tolist() == [1]  # provisioned: due at once, as before
    d.attach(150, Role.PRODUCER, 9, 30, create=True)
    assert d.drain_announces().tolist() == [150]
    seen = []
    for t in (99, 100, 129, 130, 200, 230):
        d.poll(t)
        seen.append((t, d.drain_announces().tolist()))
    assert seen == [(99, []), (100, [1]), (129, []), (130, [150]), (200, [1]), (230, [150])]
    d.poll(1_000)  # a late poll: each fires once, its skipped periods counted
    assert d.drain_announces().tolist() == [1, 150]
    assert d.streams.deadlines("announce")[:2].tolist() == [1_100, 1_030]
    e = Driver.restore(d.snapshot())  # the phases travel with snapshots
    assert e.streams.deadlines("announce")[:2].tolist() == [1_100, 1_030]


def test_a_lease_call_also_fires_the_announces_due_before_it() -> None:
    d = Driver(DriverConfig(static_stream_ids=(1,), announce_period_ns=100))
    d.drain_announces()
    a = d.attach(1, Role.CONSUMER, 5, 10)
    d.drain_announces()
    d.keepalive(a.lease_id, 150, client_id=5)
    assert d.drain_announces().tolist() == [1]


def test_without_a_period_no_announce_repeats_and_the_stream_machine_has_no_timers() -> None:
    d = Driver(DriverConfig(static_stream_ids=(1,)))
    d.drain_announces()
    d.poll(10**12)
    assert d.drain_announces().tolist() == [] and d.streams.machine.timers is None


@pytest.mark.parametrize(("kw", "err", "match"), [
    ({"announce_period_ns": 0}, ValueError, "announce_period_ns must be"),
    ({"announce_period_ns": 2**62 + 1}, ValueError, "announce_period_ns must be"),
    ({"announce_period_ns": 1.5}, TypeError, "announce_period_ns must be an int"),
    ({"announce_period_ns": 5, "shm_name": "seg"}, ValueError, "cannot be used with shm_name"),
])
def test_bad_announce_periods_are_refused(kw: dict[str, object], err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        DriverConfig(**kw)  # type: ignore[arg-type]
