"""Notices and announces with names where a person reads them (issue 19, rough edges): the
allocation-free drains stay; ``revoked_notices()`` and ``announces()`` build named records when
drained."""

from __future__ import annotations

from streamhsm import Announce, Driver, DriverConfig, RevokedNotice, RevokeReason, Role, State


def driver() -> Driver:
    d = Driver(DriverConfig(static_stream_ids=(1, 2)))
    d.drain_announces()
    d.attach(1, Role.PRODUCER, 10, 0)
    d.attach(2, Role.CONSUMER, 11, 0)
    return d


def test_revoked_notices_are_named_and_drained() -> None:
    d = driver()
    d.detach(1, 5, client_id=10)
    d.revoke(2, 6)
    notices = d.revoked_notices()
    assert notices == [RevokedNotice(1, 1, 10, Role.PRODUCER, RevokeReason.DETACHED, 5),
                       RevokedNotice(2, 2, 11, Role.CONSUMER, RevokeReason.REVOKED, 6)]
    assert notices[0].reason is RevokeReason.DETACHED and notices[1].role is Role.CONSUMER
    text = str(notices[0])
    assert "lease_id=1" in text and "reason=<RevokeReason.DETACHED: 1>" in text
    assert d.revoked_notices() == [] and len(d.drain_revoked()) == 0


def test_announces_are_named_with_epoch_and_state_and_drained() -> None:
    d = driver()
    d.bump_epoch(2)
    got = d.announces()
    assert got == [Announce(1, 2, State.ACTIVE), Announce(2, 2, State.ACTIVE)]
    assert got[0].state is State.ACTIVE and "stream_id=1" in str(got[0])
    assert d.announces() == [] and len(d.drain_announces()) == 0
