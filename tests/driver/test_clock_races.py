"""The driver's clock never goes backwards, also when calls race a batch (audit a67, part 3).

A call checks its time, may then wait for a batch that holds the tables, and only then runs and
commits its time. Meanwhile another thread may have accepted a later time (or closed the
driver): the call must check again once it holds the tables, and answer as it would have before
the wait. Deterministic: a ``dispatch_many`` on the driver's lease table, paused at the test gate
(``paused_batch``), holds that table's batch lock; the late caller at 300 is a slow-path call,
which commits its time before it waits for the tables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamhsm import (
    Driver,
    DriverClosedError,
    DriverConfig,
    LeaseEvent,
    ResponseCode,
    Role,
    attach_requests,
)

EXPIRY = 3_000  # lease_keepalive_interval_ns * grace
CLIENTS = np.array([10, 11, 12], np.int64)


def setup() -> tuple[Driver, np.ndarray]:
    d = Driver(DriverConfig(static_stream_ids=(1, 2), stream_capacity=6, lease_capacity=8,
                            lease_keepalive_interval_ns=1_000))
    lids = np.array([d.attach(1, Role.CONSUMER, int(c), 100).lease_id for c in CLIENTS],
                    np.int64)
    d.attach(2, Role.CONSUMER, 99, 100)  # the bystander whose slot the held batch dispatches to
    return d, lids


def held(d: Driver, paused_batch: Any) -> Any:
    """A ``dispatch_many`` (a keepalive event to the bystander lease) holding the lease table."""
    slots = np.array([3], np.int32)
    events = np.array([LeaseEvent.KEEPALIVE], np.int32)
    return paused_batch(d._leases, slots, events)


def later_call_at_300(d: Driver, lid: int) -> dict[str, Any]:
    """Start a keepalive at 300 through the slow path (a ``stream_id`` filter): it commits 300,
    then waits for the tables; return once it committed (its answer lands in ``["result"]``)."""
    out: dict[str, Any] = {}

    def run() -> None:
        out["result"] = d.keepalive(lid, 300, client_id=int(CLIENTS[0]), stream_id=1)

    out["thread"] = threading.Thread(target=run, daemon=True)
    out["thread"].start()
    for _ in range(20_000):
        if d.now_ns == 300:
            return out
        time.sleep(0.0005)
    raise AssertionError("the call at 300 never committed its time")


EARLY_CALLS: dict[str, Callable[[Driver, np.ndarray], Any]] = {
    "keepalive_many": lambda d, lids: d.keepalive_many(lids[1:], 150, client_ids=CLIENTS[1:]),
    "detach_many": lambda d, lids: d.detach_many(lids[1:], 150, client_ids=CLIENTS[1:]),
    "attach_many": lambda d, lids: d.attach_many(
        np.array([(1, int(Role.CONSUMER), 50, 0)], attach_requests(0).dtype), 150),
    "keepalive": lambda d, lids: d.keepalive(int(lids[1]), 150, client_id=int(CLIENTS[1])),
    "detach": lambda d, lids: d.detach(int(lids[1]), 150, client_id=int(CLIENTS[1])),
    "attach": lambda d, lids: d.attach(1, Role.CONSUMER, 50, 150),
}


@pytest.mark.parametrize("call", list(EARLY_CALLS))
def test_a_call_that_waited_rechecks_its_time(call: str, paused_batch: Any) -> None:
    d, lids = setup()
    before = [d.lease_expiry(int(x)) for x in lids[1:]]
    live = d.live_leases
    batch = held(d, paused_batch)
    early = batch.queue(lambda: EARLY_CALLS[call](d, lids))  # passed its check at 150, waits
    late = later_call_at_300(d, int(lids[0]))
    batch.resume()
    early.join()
    late["thread"].join()
    assert late["result"].code is ResponseCode.OK
    assert d.now_ns == 300
    assert isinstance(early.error, ValueError), early.error or early.result
    assert str(early.error) == "now_ns went backwards: 150 < 300"
    assert [d.lease_expiry(int(x)) for x in lids[1:]] == before  # nothing changed
    assert d.live_leases == live
    assert d.lease_expiry(int(lids[0])) == 300 + EXPIRY
    # and the clock stays where the accepted call left it
    with pytest.raises(ValueError, match="now_ns went backwards: 200 < 300"):
        d.keepalive(int(lids[0]), 200, client_id=int(CLIENTS[0]))


@pytest.mark.parametrize("call", list(EARLY_CALLS))
def test_a_call_that_waited_while_the_driver_closed_raises(call: str,
                                                           paused_batch: Any) -> None:
    d, lids = setup()
    batch = held(d, paused_batch)
    early = batch.queue(lambda: EARLY_CALLS[call](d, lids))
    d.close()
    batch.resume()
    early.join()
    assert isinstance(early.error, DriverClosedError), early.error or early.result
    assert str(early.error).startswith("this Driver is closed")
    assert d._now_ns == 100  # (the public property raises on a closed driver)
