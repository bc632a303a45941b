"""Every snapshot the driver produces restores (issue 19 class 10): found by the driver fuzzer,
a driver stopped while a dynamic stream still had a lease counted that stream nowhere as Closed,
and its own snapshot was refused ("closed_dynamic 0 does not match")."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamhsm import Driver, DriverConfig, DriverState, Role, State

SEC = 1_000_000_000


def driver() -> Driver:
    return Driver(DriverConfig(static_stream_ids=(1,), allow_dynamic_streams=True,
                               dynamic_stream_id_range=(10, 13), stream_capacity=4,
                               lease_capacity=4, lease_keepalive_interval_ns=1000 * SEC))


def stopped_with_live_dynamic_leases(d: Driver) -> None:
    d.attach(10, Role.CONSUMER, 1, 0, create=True)
    d.attach(11, Role.PRODUCER, 2, 0, create=True)
    d.request_shutdown(1)
    d.poll(10 * SEC)


def stopped_after_a_restore(d: Driver) -> None:
    d.attach(10, Role.CONSUMER, 1, 0, create=True)
    d.request_shutdown(1)
    r = Driver.restore(d.snapshot())
    r.poll(10 * SEC)
    d.__dict__.update(r.__dict__)
    for name in ("_core", "_now_ns", "_closed", "_running", "_max_time_ns", "_expiry_ns"):
        setattr(d, name, getattr(r, name))  # the fields DriverBase keeps in C


def idle_then_stopped(d: Driver) -> None:
    d.attach(10, Role.CONSUMER, 1, 0, create=True)
    d.detach(1, 1, client_id=1)  # idle: Closed, waiting for recycling
    d.attach(12, Role.CONSUMER, 3, 2, create=True)
    d.request_shutdown(3)
    d.poll(10 * SEC)


@pytest.mark.parametrize("scenario", [stopped_with_live_dynamic_leases, stopped_after_a_restore,
                                      idle_then_stopped])
def test_a_stopped_drivers_snapshot_restores(scenario: Callable[[Driver], None]) -> None:
    d = driver()
    scenario(d)
    assert d.state is DriverState.STOPPED
    closed = [sid for sid in (10, 11, 12) if d.stream_state(sid) is State.CLOSED]
    assert closed  # the shutdown's Closed dynamic streams stay observable
    r = Driver.restore(d.snapshot())
    assert r.state is DriverState.STOPPED
    assert [sid for sid in (10, 11, 12) if r.stream_state(sid) is State.CLOSED] == closed
    Driver.restore(r.snapshot())
