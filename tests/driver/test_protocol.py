"""Protocol fields the upstream driver spec carries (issue 12): the attach response's expiry, the
stream epoch in keepalive/detach answers, the producer's client id for announces, the operator's
revoke reason, and the shutdown request's reason and message."""

from __future__ import annotations

import pytest

from streamhsm import (
    Driver,
    DriverConfig,
    DriverState,
    RevokeReason,
    Role,
    ShutdownNotice,
    ShutdownReason,
)

SEC = 1_000_000_000


def make() -> Driver:
    return Driver(DriverConfig(static_stream_ids=(1, 2), lease_keepalive_interval_ns=SEC,
                               lease_expiry_grace_intervals=3, shutdown_timeout_ns=2 * SEC))


@pytest.mark.smoke
def test_attach_carries_the_lease_expiry() -> None:
    d = make()
    r = d.attach(1, Role.PRODUCER, 7, 5)
    assert r.expiry_ns == 5 + 3 * SEC == d.lease_expiry(r.lease_id)
    rejected = d.attach(9, Role.PRODUCER, 8, 5)
    assert not rejected and rejected.expiry_ns == 0


@pytest.mark.smoke
def test_keepalive_and_detach_answer_the_stream_epoch() -> None:
    d = make()
    p = d.attach(1, Role.PRODUCER, 7, 0)
    c = d.attach(1, Role.CONSUMER, 8, 0)
    assert d.keepalive(c.lease_id, 1, client_id=8).epoch == p.epoch == d.epoch(1)
    gone = d.detach(p.lease_id, 2, client_id=7)  # producer loss bumps the epoch
    assert gone.epoch == p.epoch + 1 == d.epoch(1)
    assert d.detach(c.lease_id, 3, client_id=8).epoch == d.epoch(1)
    assert d.detach(c.lease_id, 3, client_id=8).epoch == 0  # already ended


def test_stream_info_names_the_producer_client() -> None:
    d = make()
    assert d.stream_info(1).producer_client_id == 0  # type: ignore[union-attr]
    p = d.attach(1, Role.PRODUCER, 77, 0)
    info = d.stream_info(1)
    assert info is not None
    assert (info.producer_lease_id, info.producer_client_id) == (p.lease_id, 77)


def test_revoke_notices_carry_the_client_and_the_chosen_reason() -> None:
    d = make()
    a = d.attach(1, Role.CONSUMER, 70, 0)
    b = d.attach(2, Role.CONSUMER, 71, 0)
    d.revoke(a.lease_id, 1)
    d.revoke(b.lease_id, 1, reason=RevokeReason.EXPIRED)
    notices = d.drain_revoked()
    assert notices["client_id"].tolist() == [70, 71]
    assert [RevokeReason(x) for x in notices["reason"]] == [RevokeReason.REVOKED,
                                                            RevokeReason.EXPIRED]
    assert [Role(x) for x in notices["role"]] == [Role.CONSUMER, Role.CONSUMER]
    # the reason decides the lease machine's event and the counter, whoever ends the lease
    assert (d.counters["leases_revoked"], d.counters["leases_expired"]) == (1, 1)


def test_shutdown_notice_carries_reason_and_message() -> None:
    d = make()
    assert d.shutdown_notice is None
    assert d.request_shutdown(SEC, reason=ShutdownReason.ADMIN, message="maintenance")
    assert d.shutdown_notice == ShutdownNotice(ShutdownReason.ADMIN, "maintenance", SEC, 0)
    d.request_shutdown(SEC + 1, message="again")  # repeated: the first request is kept
    assert d.shutdown_notice.message == "maintenance"  # type: ignore[union-attr]
    e = Driver.restore(d.snapshot())
    assert e.shutdown_notice == d.shutdown_notice
    d.poll(3 * SEC)
    assert d.state is DriverState.STOPPED
    assert d.shutdown_notice == ShutdownNotice(ShutdownReason.ADMIN, "maintenance", SEC, 3 * SEC)
    assert Driver.restore(d.snapshot()).shutdown_notice == d.shutdown_notice


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"reason": 7}, ValueError, "shutdown reason must be NORMAL or ADMIN, got 7"),
    ({"reason": "ADMIN"}, TypeError, "reason must be an int"),
    ({"message": b"x"}, TypeError, "message must be a str"),
    ({"message": "x" * 1025}, ValueError, "message has 1025 characters"),
])
def test_bad_shutdown_requests_change_nothing(kwargs: dict[str, object], exc: type[Exception],
                                              match: str) -> None:
    d = make()
    with pytest.raises(exc, match=match):
        d.request_shutdown(5, **kwargs)  # type: ignore[arg-type]
    assert d.state is DriverState.RUNNING and d.now_ns == 0 and d.shutdown_notice is None
