"""S-3: epochs: strictly increasing per stream id for the driver's lifetime (also across close and
re-provisioning), one bump for an attach that provisions a stream and attaches its producer, a bump
on producer loss and on explicit remap, EpochBumped dispatched and the state kept."""

from __future__ import annotations

import pytest

from streamhsm import Driver, DriverConfig, ResponseCode, Role, State


def make(**kw) -> Driver:  # type: ignore[no-untyped-def]
    base = dict(static_stream_ids=(1,), allow_dynamic_streams=True,
                dynamic_stream_id_range=(100, 109), stream_capacity=4, lease_capacity=8)
    base.update(kw)
    return Driver(DriverConfig(**base))  # type: ignore[arg-type]


def test_provision_and_producer_in_one_attach_bumps_once() -> None:
    d = make()
    r = d.attach(100, Role.PRODUCER, 10, 0, create=True)
    assert r.epoch == 1 and d.epoch(100) == 1
    assert d.counters["epoch_bumps"] == 2  # static stream 1 at start + this one


def test_producer_on_stream_without_one_bumps() -> None:
    d = make()
    assert d.attach(100, Role.CONSUMER, 10, 0, create=True).epoch == 1
    assert d.attach(100, Role.CONSUMER, 11, 0).epoch == 1  # consumers do not bump
    assert d.attach(100, Role.PRODUCER, 12, 0).epoch == 2
    assert d.epoch(1) == 1
    assert d.attach(1, Role.PRODUCER, 13, 0).epoch == 2


@pytest.mark.parametrize("end", ["detach", "revoke", "expire"])
def test_producer_loss_bumps_and_keeps_state(end: str) -> None:
    d = make()
    p = d.attach(1, Role.PRODUCER, 10, 0)
    d.attach(1, Role.CONSUMER, 11, 0)
    d.keepalive(2, 2_000_000_000, client_id=11)
    before = d.counters["epoch_bumps"]
    if end == "detach":
        d.detach(p.lease_id, 2_000_000_001, client_id=10)
    elif end == "revoke":
        d.revoke(p.lease_id, 2_000_000_001)
    else:
        assert d.poll(3_000_000_001) == 1
    assert d.epoch(1) == p.epoch + 1 and d.counters["epoch_bumps"] == before + 1
    assert d.stream_state(1) is State.ACTIVE
    assert d.streams.unhandled_total == 0  # EpochBumped handled in Active


def test_consumer_loss_does_not_bump() -> None:
    d = make()
    c = d.attach(1, Role.CONSUMER, 10, 0)
    d.detach(c.lease_id, 1, client_id=10)
    assert d.epoch(1) == 1


def test_explicit_remap() -> None:
    d = make()
    r = d.bump_epoch(1)
    assert r and r.epoch == 2 and d.epoch(1) == 2 and d.stream_state(1) is State.ACTIVE
    unknown = d.bump_epoch(100)
    assert (unknown.code, unknown.reason) == (ResponseCode.REJECTED, "unknown stream 100")
    with pytest.raises(TypeError, match="stream_id must be an int"):
        d.bump_epoch("1")  # type: ignore[arg-type]


def test_remap_while_draining_keeps_draining() -> None:
    d = make()
    d.request_shutdown(0)
    assert d.bump_epoch(1).epoch == 2
    assert d.stream_state(1) is State.DRAINING and d.streams.unhandled_total == 0


def test_epochs_strictly_increase_across_close_and_reprovisioning() -> None:
    d = make()
    seen: list[int] = []
    now = 0
    for k in range(5):
        p = d.attach(100, Role.PRODUCER, 10 + k, now, create=True)
        assert p, p.reason
        seen.append(p.epoch)
        assert d.bump_epoch(100)
        seen.append(d.epoch(100))
        d.detach(p.lease_id, now, client_id=10 + k)  # producer loss bump, then idle -> Closed
        seen.append(d.epoch(100))
        assert d.stream_state(100) is State.CLOSED
        if k % 2:
            now += 1
            d.poll(now)  # recycle the slot before re-provisioning
            assert d.stream_state(100) is None
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[0] == 1


def test_closed_stream_rejects_remap() -> None:
    d = make()
    p = d.attach(100, Role.CONSUMER, 10, 0, create=True)
    d.detach(p.lease_id, 0, client_id=10)
    r = d.bump_epoch(100)
    assert (r.code, r.reason) == (ResponseCode.REJECTED, "stream 100 is closed")


def test_announces_follow_epoch_and_state_changes() -> None:
    d = make()
    assert d.drain_announces().tolist() == [1]  # provisioned at start
    assert d.drain_announces().tolist() == []
    c = d.attach(100, Role.CONSUMER, 10, 0, create=True)
    d.bump_epoch(1)
    assert d.drain_announces().tolist() == [100, 1]
    d.detach(c.lease_id, 1, client_id=10)  # stream 100 closed: not announced
    assert d.drain_announces().tolist() == []
    assert sorted(d.announce_eligible().tolist()) == [1]
