"""S-4: draining and shutdown: DriverDraining broadcast, every attach rejected while draining with
no stream provisioned, keepalive/detach/expiry keep working and their lease ends are handled by
Draining (not unhandled), DriverShutdown after the timeout, Stopped, repeated requests harmless."""

from __future__ import annotations

import pytest

from streamhsm import (
    Driver,
    DriverConfig,
    DriverState,
    LeaseState,
    ResponseCode,
    RevokeReason,
    Role,
    State,
)

SEC = 1_000_000_000


def make(**kw) -> Driver:  # type: ignore[no-untyped-def]
    base = dict(static_stream_ids=(1, 2), allow_dynamic_streams=True,
                dynamic_stream_id_range=(100, 109), stream_capacity=8, lease_capacity=16)
    base.update(kw)
    return Driver(DriverConfig(**base))  # type: ignore[arg-type]


def test_request_shutdown_drains_every_stream() -> None:
    d = make()
    d.attach(100, Role.CONSUMER, 10, 0, create=True)
    assert d.state is DriverState.RUNNING
    r = d.request_shutdown(0)
    assert r and r.reason == "draining" and d.state is DriverState.DRAINING
    for sid in (1, 2, 100):
        assert d.stream_state(sid) is State.DRAINING
    assert d.streams.count(State.DRAINING) == 3 and d.streams.unhandled_total == 0
    assert sorted(d.drain_announces().tolist()) == [1, 2, 100]  # final announce of every stream


def test_attaches_rejected_and_nothing_provisioned_while_draining() -> None:
    d = make()
    d.request_shutdown(0)
    provisioned = d.counters["streams_provisioned"]
    for args, kw in [((1, Role.CONSUMER, 10, 1), {}), ((1, Role.PRODUCER, 11, 1), {}),
                     ((101, Role.CONSUMER, 12, 1), {"create": True}), ((999, 7, 13, 1), {})]:
        r = d.attach(*args, **kw)
        assert (r.code, r.reason) == (ResponseCode.REJECTED, "driver draining")
    assert d.stream_state(101) is None
    assert d.counters["streams_provisioned"] == provisioned
    assert d.counters["attaches_rejected"] == 4 and d.live_leases == 0


def test_leases_keep_working_while_draining_and_are_not_unhandled() -> None:
    d = make()
    p = d.attach(1, Role.PRODUCER, 10, 0)
    c1 = d.attach(1, Role.CONSUMER, 11, 0)
    c2 = d.attach(100, Role.CONSUMER, 12, 0, create=True)
    d.request_shutdown(1)
    assert d.keepalive(c1.lease_id, SEC, client_id=11)
    assert d.detach(p.lease_id, SEC, client_id=10)  # ProducerDetached + EpochBumped in Draining
    assert d.detach(c2.lease_id, SEC, client_id=12)  # ConsumerDetached, then StreamIdle -> Closed
    assert d.stream_state(100) is State.CLOSED  # Closed observable until recycled
    assert d.poll(SEC + 1) == 0
    assert d.stream_state(100) is None
    assert d.stream_state(1) is State.DRAINING
    assert d.streams.unhandled_total == 0
    assert d.counters["stream_hsm_unhandled"] == 0 and d.counters["lease_hsm_unhandled"] == 0


def test_expiry_works_while_draining() -> None:
    d = make(shutdown_timeout_ns=100 * SEC)
    c = d.attach(1, Role.CONSUMER, 10, 0)
    d.request_shutdown(0)
    assert d.poll(3 * SEC + 1) == 1
    assert d.lease_state(c.lease_id) is LeaseState.CLOSED
    assert d.streams.unhandled_total == 0 and d.state is DriverState.DRAINING


def test_shutdown_after_timeout_closes_everything() -> None:
    d = make(shutdown_timeout_ns=2 * SEC)
    p = d.attach(1, Role.PRODUCER, 10, 0)
    d.attach(2, Role.CONSUMER, 11, 0)
    d.request_shutdown(SEC)
    d.keepalive(p.lease_id, 2 * SEC, client_id=10)
    d.keepalive(2, 2 * SEC, client_id=11)
    d.poll(3 * SEC - 1)
    assert d.state is DriverState.DRAINING
    d.drain_revoked()
    d.poll(3 * SEC)
    assert d.state is DriverState.STOPPED
    assert d.stream_state(1) is State.CLOSED and d.stream_state(2) is State.CLOSED
    assert d.streams.count(State.LIVE) == 0 and d.live_leases == 0
    assert d.lease_state(p.lease_id) is LeaseState.CLOSED
    notices = d.drain_revoked()
    assert sorted(notices["lease_id"].tolist()) == [1, 2]
    assert set(notices["reason"].tolist()) == {RevokeReason.SHUTDOWN}
    c = d.counters
    assert c["leases_revoked"] == 2 and c["streams_closed"] == 2
    assert c["stream_hsm_unhandled"] == 0 and c["lease_hsm_unhandled"] == 0
    r = d.attach(1, Role.CONSUMER, 12, 3 * SEC)
    assert (r.code, r.reason) == (ResponseCode.REJECTED, "driver stopped")


def test_repeated_requests_are_harmless() -> None:
    d = make(shutdown_timeout_ns=SEC)
    assert d.request_shutdown(0)
    again = d.request_shutdown(SEC // 2)
    assert again and again.reason == "already draining"
    d.poll(SEC // 2 + 1)
    assert d.state is DriverState.DRAINING  # the deadline is from the first request
    d.poll(SEC)
    assert d.state is DriverState.STOPPED
    assert d.request_shutdown(2 * SEC).reason == "already stopped"
    assert d.streams.unhandled_total == 0


def test_shutdown_token() -> None:
    d = make(shutdown_token="s3cret")
    bad = d.request_shutdown(0, token="guess")
    assert (bad.code, bad.reason) == (ResponseCode.REJECTED, "invalid shutdown token")
    assert d.request_shutdown(0).code is ResponseCode.REJECTED
    assert d.state is DriverState.RUNNING
    assert d.request_shutdown(0, token="s3cret") and d.state is DriverState.DRAINING


@pytest.mark.parametrize("timeout", [0, 5])
def test_zero_and_short_timeouts(timeout: int) -> None:
    d = make(shutdown_timeout_ns=timeout)
    d.request_shutdown(10)
    d.poll(10 + timeout)
    assert d.state is DriverState.STOPPED


def test_driver_stats() -> None:
    import json

    d = make()
    p = d.attach(1, Role.PRODUCER, 10, 0)
    d.detach(p.lease_id, 1, client_id=10)
    d.request_shutdown(2)
    st = d.stats()
    json.dumps(st)
    assert st["state"] == "DRAINING" and st["live_leases"] == 0
    assert st["pending_revoke_notices"] == 1
    assert st["counters"]["leases_detached"] == 1  # type: ignore[index]
    assert st["streams"]["occupancy"]["Draining"] == 2  # type: ignore[index]
    assert st["leases"]["transitions"] == {"Init/AttachOk": 1, "Active/Detach": 1,  # type: ignore[index]
                                           "Detached/Close": 1}
