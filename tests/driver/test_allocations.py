"""Allocation-free driver control path: after warm-up, 10,000 cycles of attach / keepalive /
detach / poll (with expiry and producer loss) on existing streams leave tracemalloc flat (a leak
of one block per cycle, or of one block per thousand cycles, shows up as growth)."""

from __future__ import annotations

import gc
import sys
import tracemalloc

import pytest

from streamhsm import Driver, DriverConfig, Role

# not in the smoke suite: allocation counts
pytestmark = [pytest.mark.usefixtures("frozen_heap"), pytest.mark.smoke(False)]

CYCLES = 10_000
EXPIRY = 3_000


@pytest.mark.parametrize("period", [None, 700])  # with the announce cadence's timer too
def test_control_path_is_allocation_free(period: int | None) -> None:
    d = Driver(DriverConfig(static_stream_ids=(1, 2), stream_capacity=4, lease_capacity=8,
                            lease_keepalive_interval_ns=1_000, outbox_capacity=64,
                            announce_period_ns=period))
    clock = [0]

    def cycles(n: int) -> None:
        now = clock[0]
        for _ in range(n):
            p = d.attach(1, Role.PRODUCER, 7, now)
            c = d.attach(2, Role.CONSUMER, 8, now)
            d.keepalive(p.lease_id, now + 1, client_id=7)
            d.detach(p.lease_id, now + 2, client_id=7)  # producer loss: epoch bump, notice
            d.poll(now + EXPIRY + 1)  # expires the consumer lease
            d.drain_announces(out)
            d.drain_revoked(notices)
            now += EXPIRY + 2
            assert c.lease_id > 0
        clock[0] = now

    import numpy as np

    from streamhsm import REVOKED_NOTICE_DTYPE

    out = np.empty(4, np.int64)
    notices = np.zeros(64, REVOKED_NOTICE_DTYPE)
    cycles(2_000)
    gc.collect()
    blocks = sys.getallocatedblocks()
    cycles(CYCLES // 4)
    gc.collect()
    assert sys.getallocatedblocks() - blocks <= 2  # the harness's own locals

    tracemalloc.start(1)
    try:
        cycles(1_000)
        keep = [tracemalloc.Filter(True, __file__), tracemalloc.Filter(True, "*streamhsm*")]
        tracemalloc.take_snapshot().filter_traces(keep)
        cycles(1_000)
        before = tracemalloc.take_snapshot().filter_traces(keep)
        cycles(CYCLES)
        after = tracemalloc.take_snapshot().filter_traces(keep)
    finally:
        tracemalloc.stop()
    # this file counts only inside the loop: tracemalloc's own snapshot-taking lines may keep a
    # block of their own (seen on Python 3.10), which the driver has nothing to do with
    loop = range(cycles.__code__.co_firstlineno, max(ln for _, _, ln in cycles.__code__.co_lines()
                                                    if ln is not None) + 1)
    grown = [s for s in after.compare_to(before, "lineno") if s.size_diff > 0
             and (s.traceback[0].filename != __file__ or s.traceback[0].lineno in loop)]
    assert sum(s.size_diff for s in grown) == 0, grown[:5]
    c = d.counters
    assert c["attaches_ok"] == 2 * (2_000 + CYCLES // 4 + 2_000 + CYCLES)
    assert c["leases_expired"] == c["attaches_ok"] // 2 and d.live_leases == 0
