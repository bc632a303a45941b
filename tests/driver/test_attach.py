"""S-2: attach/detach integration: provisioning dispatch, producer exclusivity, the client id
rule, rejected attaches leave no trace, idle cleanup of on-demand streams only, and the
drain_on_producer_loss policy both ways."""

from __future__ import annotations

import numpy as np
import pytest

from streamhsm import (
    REVOKED_NOTICE_DTYPE,
    Driver,
    DriverConfig,
    LeaseState,
    ResponseCode,
    RevokeReason,
    Role,
    State,
)

OK, REJ, INV = ResponseCode.OK, ResponseCode.REJECTED, ResponseCode.INVALID_PARAMS
EXPIRY = 3_000_000_000


def make(**kw) -> Driver:  # type: ignore[no-untyped-def]
    base = dict(static_stream_ids=(1, 2, 3), allow_dynamic_streams=True,
                dynamic_stream_id_range=(100, 163), stream_capacity=16, lease_capacity=16)
    base.update(kw)
    return Driver(DriverConfig(**base))  # type: ignore[arg-type]


def observable(d: Driver) -> tuple:  # type: ignore[type-arg]
    """Everything an attach could change."""
    return (d.streams.states.tobytes(), d.streams.unhandled.tobytes(), d.live_leases,
            {k: v for k, v in d.counters.items() if k != "attaches_rejected"},
            [d.stream_info(s) for s in (1, 2, 3, 100, 101)], d.epoch(100), d.epoch(101))


def test_static_streams_are_provisioned_at_start() -> None:
    d = make()
    for sid in (1, 2, 3):
        info = d.stream_info(sid)
        assert info is not None and info.state is State.ACTIVE and info.epoch == 1
        assert not info.dynamic and info.producer_lease_id == 0 and info.consumers == 0
    assert d.counters["streams_provisioned"] == 3 and d.counters["epoch_bumps"] == 3
    assert d.streams.unhandled_total == 0 and d.stream_state(100) is None


def test_attach_dispatches_and_records() -> None:
    d = make()
    p = d.attach(1, Role.PRODUCER, 10, 0)
    c = d.attach(1, "consumer", 11, 0)
    c2 = d.attach(1, int(Role.CONSUMER), 12, 0)
    assert (p.code, c.code, c2.code) == (OK, OK, OK)
    assert (p.lease_id, c.lease_id, c2.lease_id) == (1, 2, 3)
    info = d.stream_info(1)
    assert info is not None and info.producer_lease_id == 1 and info.consumers == 2
    assert d.lease_state(p.lease_id) is LeaseState.ACTIVE
    assert d.lease_expiry(p.lease_id) == EXPIRY
    assert d.counters["attaches_ok"] == 3 and d.streams.unhandled_total == 0


def test_producer_exclusivity() -> None:
    d = make()
    assert d.attach(1, Role.PRODUCER, 10, 0)
    r = d.attach(1, Role.PRODUCER, 11, 0)
    assert (r.code, r.reason, r.lease_id, r.epoch) == (REJ, "producer already attached", 0, 0)
    assert d.attach(2, Role.PRODUCER, 11, 0)  # another stream is fine
    assert d.detach(1, 1, client_id=10)
    assert d.attach(1, Role.PRODUCER, 12, 2)  # the slot is free again


def test_client_holds_one_live_lease() -> None:
    d = make()
    assert d.attach(1, Role.CONSUMER, 10, 0)
    r = d.attach(2, Role.CONSUMER, 10, 0)
    assert (r.code, r.reason) == (REJ, "client_id already attached")
    assert d.detach(1, 1, client_id=10)
    assert d.attach(2, Role.CONSUMER, 10, 1)  # after the lease ended, the client may attach again


def test_lease_ids_are_never_reused() -> None:
    d = make(lease_capacity=2)
    seen = []
    for k in range(20):
        r = d.attach(1, Role.CONSUMER, 100 + k, k)
        assert r and r.lease_id not in seen
        seen.append(r.lease_id)
        assert d.detach(r.lease_id, k, client_id=100 + k)
    assert seen == sorted(seen)
    assert all(d.lease_state(lid) is LeaseState.CLOSED for lid in seen)
    assert d.lease_state(seen[-1] + 1) is None and d.lease_state(0) is None


@pytest.mark.parametrize(("args", "kwargs", "code", "reason"), [
    ((500, Role.CONSUMER, 10, 0), {}, REJ, "unknown stream 500"),
    ((100, Role.CONSUMER, 10, 0), {}, REJ, "unknown stream 100"),  # create not asked
    ((500, Role.CONSUMER, 10, 0), {"create": True}, INV,
     r"stream id 500 outside the dynamic range \[100, 163\]"),
    ((-1, Role.CONSUMER, 10, 0), {}, INV, "stream id -1 out of range"),
    ((2**31, Role.CONSUMER, 10, 0), {}, INV, f"stream id {2**31} out of range"),
    ((1, 7, 10, 0), {}, INV, "unknown role 7"),
    ((1, "observer", 10, 0), {}, INV, "unknown role 'observer'"),
    ((1, Role.CONSUMER, 0, 0), {}, INV, "client id 0 out of range"),
    ((1, Role.CONSUMER, 2**63, 0), {}, INV, f"client id {2**63} out of range"),
    ((1, Role.CONSUMER, 99, 0), {}, REJ, "client_id already attached"),
    ((1, Role.PRODUCER, 98, 0), {}, REJ, "producer already attached"),
])
def test_rejected_attach_leaves_no_trace(args, kwargs, code, reason) -> None:  # type: ignore[no-untyped-def]
    import re

    d = make()
    assert d.attach(1, Role.CONSUMER, 99, 0) and d.attach(1, Role.PRODUCER, 97, 0)
    before = observable(d)
    rejected = d.counters["attaches_rejected"]
    r = d.attach(*args, **kwargs)
    assert r.code == code and re.match(reason, r.reason) and not r
    assert (r.lease_id, r.epoch) == (0, 0)
    assert observable(d) == before
    assert d.counters["attaches_rejected"] == rejected + 1


def test_attach_without_dynamic_streams() -> None:
    d = make(allow_dynamic_streams=False, dynamic_stream_id_range=None)
    r = d.attach(100, Role.CONSUMER, 10, 0, create=True)
    assert (r.code, r.reason) == (REJ, "unknown stream 100")


def test_capacity_exhaustion_is_rejected_without_trace() -> None:
    d = make(stream_capacity=4, lease_capacity=3)
    assert d.attach(100, Role.CONSUMER, 1, 0, create=True)  # 4th stream slot
    before = observable(d)
    r = d.attach(101, Role.CONSUMER, 2, 0, create=True)
    assert (r.code, r.reason) == (REJ, "stream capacity exhausted") and observable(d) == before
    assert d.attach(1, Role.CONSUMER, 2, 0) and d.attach(1, Role.CONSUMER, 3, 0)
    before = observable(d)
    r = d.attach(2, Role.CONSUMER, 4, 0)
    assert (r.code, r.reason) == (REJ, "lease capacity exhausted") and observable(d) == before


def test_bad_python_types_raise() -> None:
    d = make()
    with pytest.raises(TypeError, match="stream_id must be an int, got float 1.0"):
        d.attach(1.0, Role.CONSUMER, 10, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="role must be an int, got NoneType"):
        d.attach(1, None, 10, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="client_id must be an int, got str"):
        d.attach(1, Role.CONSUMER, "10", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="create must be a bool, got int 1"):
        d.attach(1, Role.CONSUMER, 10, 0, create=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now_ns must be between 0 and .*, got -5"):
        d.attach(1, Role.CONSUMER, 10, -5)
    d.poll(100)
    with pytest.raises(ValueError, match="now_ns went backwards: 99 < 100"):
        d.keepalive(1, 99, client_id=10)
    with pytest.raises(TypeError, match="lease_id must be an int, got float"):
        d.detach(1.5, 100, client_id=10)  # type: ignore[arg-type]
    assert d.counters["attaches_ok"] == 0 and d.counters["attaches_rejected"] == 0


def test_dynamic_stream_is_provisioned_on_demand() -> None:
    d = make()
    r = d.attach(100, Role.CONSUMER, 10, 0, create=True)
    assert r and r.epoch == 1
    info = d.stream_info(100)
    assert info is not None and info.dynamic and info.state is State.ACTIVE and info.consumers == 1
    assert d.counters["streams_provisioned"] == 4
    r2 = d.attach(100, Role.CONSUMER, 11, 0, create=True)  # exists: create is harmless
    assert r2 and d.counters["streams_provisioned"] == 4


def test_idle_cleanup_of_on_demand_streams_only() -> None:
    d = make()
    a = d.attach(100, Role.CONSUMER, 10, 0, create=True)
    b = d.attach(1, Role.CONSUMER, 11, 0)
    assert d.detach(a.lease_id, 1, client_id=10) and d.detach(b.lease_id, 1, client_id=11)
    assert d.stream_state(100) is State.CLOSED  # observable until its slot is recycled
    assert d.stream_state(1) is State.ACTIVE  # configured streams stay
    assert d.counters["streams_closed"] == 1 and d.streams.unhandled_total == 0
    assert len(d.streams) == 4
    d.poll(2)
    assert d.stream_state(100) is None and len(d.streams) == 3
    assert d.epoch(100) == 1  # the id's epoch is remembered


def test_idle_cleanup_waits_for_the_last_lease() -> None:
    d = make()
    p = d.attach(100, Role.PRODUCER, 10, 0, create=True)
    c = d.attach(100, Role.CONSUMER, 11, 0, create=True)
    assert d.detach(p.lease_id, 1, client_id=10)
    assert d.stream_state(100) is State.ACTIVE
    assert d.detach(c.lease_id, 2, client_id=11)
    assert d.stream_state(100) is State.CLOSED


def test_detach_is_idempotent_and_emits_one_notice() -> None:
    d = make()
    r = d.attach(1, Role.CONSUMER, 10, 0)
    assert d.detach(r.lease_id, 5, client_id=10).code is OK
    again = d.detach(r.lease_id, 6, client_id=10)
    assert again.code is OK and again.reason == "lease already ended"
    unknown = d.detach(999, 6, client_id=10)
    assert (unknown.code, unknown.reason) == (REJ, "unknown lease")
    notices = d.drain_revoked()
    assert notices.dtype == REVOKED_NOTICE_DTYPE and len(notices) == 1
    assert notices[0].tolist() == (r.lease_id, 1, 10, Role.CONSUMER, RevokeReason.DETACHED, 5)
    assert d.counters["leases_detached"] == 1 and len(d.drain_revoked()) == 0


def test_keepalive_extends_expiry_and_poll_expires() -> None:
    d = make()
    a = d.attach(1, Role.CONSUMER, 10, 0)
    b = d.attach(1, Role.PRODUCER, 11, 0)
    assert d.keepalive(a.lease_id, 2_000_000_000, client_id=10)
    assert d.lease_expiry(a.lease_id) == 2_000_000_000 + EXPIRY
    assert d.poll(EXPIRY) == 0  # expiry is "now > expiry"
    assert d.poll(EXPIRY + 1) == 1
    assert d.lease_state(b.lease_id) is LeaseState.CLOSED
    assert d.lease_state(a.lease_id) is LeaseState.ACTIVE
    k = d.keepalive(b.lease_id, EXPIRY + 2, client_id=11)
    assert (k.code, k.reason) == (REJ, "lease ended")
    assert d.keepalive(12345, EXPIRY + 2, client_id=11).reason == "unknown lease"
    c = d.counters
    assert (c["leases_expired"], c["keepalives"]) == (1, 1)
    notice = d.drain_revoked()[0]
    assert (notice["lease_id"], notice["reason"], notice["time_ns"]) == (
        b.lease_id, RevokeReason.EXPIRED, EXPIRY + 1)


def test_revoke() -> None:
    d = make()
    r = d.attach(1, Role.CONSUMER, 10, 0)
    assert d.revoke(r.lease_id, 1) and d.counters["leases_revoked"] == 1
    assert d.drain_revoked()[0]["reason"] == RevokeReason.REVOKED
    assert d.revoke(424242, 1).code is REJ


@pytest.mark.parametrize("policy", [False, True])
def test_drain_on_producer_loss(policy: bool) -> None:
    d = make(drain_on_producer_loss=policy)
    p = d.attach(1, Role.PRODUCER, 10, 0)
    c = d.attach(1, Role.CONSUMER, 11, 0)
    assert d.detach(p.lease_id, 1, client_id=10)
    assert d.stream_state(1) is (State.DRAINING if policy else State.ACTIVE)
    late = d.attach(1, Role.CONSUMER, 12, 2)
    if policy:
        assert (late.code, late.reason) == (REJ, "stream draining")
    else:
        assert late
    assert d.attach(1, Role.PRODUCER, 13, 3)  # a new producer reactivates the stream
    assert d.stream_state(1) is State.ACTIVE
    assert d.detach(c.lease_id, 4, client_id=11)
    assert d.streams.unhandled_total == 0


def test_revoke_notice_outbox_overflow_is_counted() -> None:
    d = make(outbox_capacity=2)
    ids = [d.attach(1, Role.CONSUMER, 10 + k, 0).lease_id for k in range(3)]
    for k, lid in enumerate(ids):
        assert d.detach(lid, 1, client_id=10 + k)
    assert d.counters["revoke_notices_dropped"] == 1
    buf = np.zeros(1, REVOKED_NOTICE_DTYPE)
    first = d.drain_revoked(buf)
    assert first.tolist() == [(ids[0], 1, 10, 2, 1, 1)] and first.base is buf
    assert d.drain_revoked()["lease_id"].tolist() == [ids[1]]
    with pytest.raises(TypeError, match="REVOKED_NOTICE_DTYPE"):
        d.drain_revoked(np.zeros(3, np.int64))
