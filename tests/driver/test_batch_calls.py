"""The batch calls' boundary (issue 22, target 1): arguments validated once before anything
changes (dtypes, shapes, contiguity, lengths, ``out``, the time, a closed driver), arrays that
overlap ``out`` copied first, one bad row answered in its own row, and an allocation-free loop
with ``out=``."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any

import numpy as np
import pytest

from streamhsm import (
    ATTACH_RESULT_DTYPE,
    LEASE_RESULT_DTYPE,
    BatchReason,
    Driver,
    DriverClosedError,
    DriverConfig,
    ResponseCode,
    Role,
    attach_requests,
    attach_results,
    lease_results,
)

OK, REJ, INV = ResponseCode.OK, ResponseCode.REJECTED, ResponseCode.INVALID_PARAMS


def driver(**kw: Any) -> Driver:
    cfg = {"static_stream_ids": (1, 2), "allow_dynamic_streams": True,
           "dynamic_stream_id_range": (100, 103), "stream_capacity": 6, "lease_capacity": 8,
           "lease_keepalive_interval_ns": 1_000}
    cfg.update(kw)
    return Driver(DriverConfig(**cfg))


def state_of(d: Driver) -> tuple[Any, ...]:
    cols = d._core.columns_copy()
    return (tuple(a.tobytes() for a in cols.values()), d._streams.states.tobytes(),
            d._leases.states.tobytes(), d._now_ns, d._core.last_lease_id)


def three_leases() -> Driver:
    d = driver()
    for client in (10, 11, 12):
        assert d.attach(1 + client % 2, Role.CONSUMER, client, 0).lease_id == client - 9
    return d


I64 = np.array([1, 2], np.int64)
BAD_ARRAYS = [
    ([1, 2], TypeError, "lease_ids must be a 1-D numpy array of int64, got list"),
    (np.array([1, 2], np.int32), TypeError, "lease_ids must be a 1-D C-contiguous int64 array"),
    (np.array([1.0, 2.0]), TypeError, "dtype mismatch"),
    (np.array([[1, 2]], np.int64), ValueError, "wrong number of dimensions"),
    (np.array([1, 0, 2, 0], np.int64)[::2], ValueError, "not C-contiguous"),
]


@pytest.mark.parametrize("call", ["keepalive_many", "detach_many"])
@pytest.mark.parametrize("bad, error, match", BAD_ARRAYS)
def test_bad_lease_arrays_raise_and_change_nothing(call: str, bad: Any, error: type,
                                                   match: str) -> None:
    d = three_leases()
    before = state_of(d)
    with pytest.raises(error, match=match):
        getattr(d, call)(bad, 5, client_ids=I64)
    with pytest.raises(error, match=match.replace("lease_ids", "client_ids")):
        getattr(d, call)(I64, 5, client_ids=bad)
    assert state_of(d) == before


@pytest.mark.parametrize("call", ["keepalive_many", "detach_many"])
def test_lengths_out_and_time_are_checked_first(call: str) -> None:
    d = three_leases()
    before = state_of(d)
    fn = getattr(d, call)
    with pytest.raises(ValueError, match="client_ids has 1 entries, lease_ids 2"):
        fn(I64, 5, client_ids=np.array([10], np.int64))
    with pytest.raises(ValueError, match="out holds 1 rows, the batch has 2"):
        fn(I64, 5, client_ids=I64, out=lease_results(1))
    with pytest.raises(TypeError, match="out must be a 1-D C-contiguous array of LEASE_RESULT"):
        fn(I64, 5, client_ids=I64, out=attach_results(2))
    with pytest.raises(TypeError, match="not a subclass"):
        fn(I64, 5, client_ids=I64, out=lease_results(2).view(np.recarray))
    ro = lease_results(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fn(I64, 5, client_ids=I64, out=ro)
    with pytest.raises(ValueError, match="now_ns must be between 0 and"):
        fn(I64, -1, client_ids=I64)
    d.poll(7)
    before = state_of(d)
    with pytest.raises(ValueError, match="now_ns went backwards: 6 < 7"):
        fn(I64, 6, client_ids=I64)
    with pytest.raises(TypeError, match="now_ns must be an int, got float"):
        fn(I64, 7.0, client_ids=I64)
    assert state_of(d) == before


def test_bad_requests_raise_and_change_nothing() -> None:
    d = three_leases()
    before = state_of(d)
    with pytest.raises(TypeError, match="requests must be a 1-D numpy array of ATTACH_REQUEST"):
        d.attach_many([(1, 1, 5, 0)], 5)
    with pytest.raises(TypeError, match="dtype mismatch"):
        d.attach_many(np.zeros(2, LEASE_RESULT_DTYPE), 5)
    with pytest.raises(ValueError, match="out holds 0 rows, the batch has 1"):
        d.attach_many(attach_requests(1), 5, out=attach_results(0))
    assert state_of(d) == before


def test_a_closed_driver_raises() -> None:
    d = three_leases()
    d.close()
    with pytest.raises(DriverClosedError):
        d.keepalive_many(I64, 5, client_ids=I64)
    with pytest.raises(DriverClosedError):
        d.detach_many(I64, 5, client_ids=I64)
    with pytest.raises(DriverClosedError):
        d.attach_many(attach_requests(1), 5)


def test_one_bad_row_is_answered_in_its_own_row() -> None:
    d = three_leases()
    lids = np.array([1, 2**63 - 1, 2, -5, 3, 2], np.int64)
    clients = np.array([10, 10, 12, 11, 12, 11], np.int64)  # row 2: lease 2 is client 11's
    rows = d.keepalive_many(lids, 9, client_ids=clients)
    assert rows["code"].tolist() == [OK, REJ, REJ, REJ, OK, OK]
    assert rows["reason"].tolist() == [0, BatchReason.UNKNOWN_LEASE, BatchReason.UNKNOWN_LEASE,
                                       BatchReason.UNKNOWN_LEASE, 0, 0]
    assert d.counters["keepalives"] == 3
    assert [d.lease_expiry(lid) for lid in (1, 2, 3)] == [3_009, 3_009, 3_009]
    req = attach_requests(4)
    req["stream_id"], req["role"] = [1, 7, 100, 100], [Role.PRODUCER, 9, Role.PRODUCER, 2]
    req["client_id"], req["create"] = [20, 21, 22, 22], [0, 0, 1, 1]
    rows = d.attach_many(req, 10)
    assert rows["code"].tolist() == [OK, INV, OK, REJ]
    assert rows["reason"].tolist() == [0, BatchReason.ROLE, 0, BatchReason.CLIENT_HOLDS_LEASE]
    assert rows["lease_id"].tolist() == [4, 0, 5, 0]
    assert d.counters["attaches_rejected"] == 2


@pytest.mark.parametrize("call", ["keepalive_many", "detach_many"])
def test_arrays_that_overlap_out_are_copied_first(call: str) -> None:
    """Lease ids stored in ``out``'s own memory: the batch must read them as they were when
    called, not as earlier rows overwrite them (each row's epoch lands on a later lease id;
    100 rows span several of keepalive_many's look-up chunks)."""
    d = driver(lease_capacity=128)
    req = attach_requests(100)
    req["stream_id"], req["role"], req["client_id"] = 1, Role.CONSUMER, np.arange(1000, 1100)
    lease_ids = d.attach_many(req, 0)["lease_id"].copy()
    out = lease_results(100)
    ids = out.view(np.int64)[:100]
    ids[:] = lease_ids
    rows = getattr(d, call)(ids, 5, client_ids=req["client_id"].copy(), out=out)
    assert rows["code"].tolist() == [OK] * 100
    assert d.counters["keepalives" if call == "keepalive_many" else "leases_detached"] == 100


def test_batches_wait_for_nothing_and_drive_the_state_machines() -> None:
    d = driver()
    req = attach_requests(2)
    req["stream_id"], req["role"], req["client_id"] = [1, 1], [1, 2], [30, 31]
    rows = d.attach_many(req, 1)
    assert rows["code"].tolist() == [OK, OK] and rows["epoch"].tolist() == [2, 2]
    rows = d.detach_many(rows["lease_id"].copy(), 2, client_ids=req["client_id"].copy())
    assert rows["code"].tolist() == [OK, OK] and rows["epoch"].tolist() == [3, 3]
    notices = d.drain_revoked()
    assert notices["lease_id"].tolist() == [1, 2]
    d.request_shutdown(3)
    rows = d.attach_many(req, 4)
    assert rows["reason"].tolist() == [BatchReason.DRIVER_DRAINING] * 2
    assert d.counters["attaches_rejected"] == 2


def test_batch_calls_are_allocation_free_with_out(frozen_heap: None) -> None:
    d = driver(stream_capacity=4, lease_capacity=64, outbox_capacity=64)
    n = 16
    req = attach_requests(n)
    req["stream_id"] = 1 + np.arange(n) % 2
    req["role"] = Role.CONSUMER
    lids, clients = np.zeros(n, np.int64), np.zeros(n, np.int64)
    a_out, l_out = attach_results(n), lease_results(n)
    notices = np.zeros(64, d.drain_revoked().dtype)
    announces = np.empty(8, np.int64)
    clock = [0]

    def cycles(k: int) -> None:
        now = clock[0]
        for _ in range(k):
            req["client_id"] += n
            d.attach_many(req, now, out=a_out)
            np.copyto(lids, a_out["lease_id"])
            np.copyto(clients, req["client_id"])
            d.keepalive_many(lids, now + 1, client_ids=clients, out=l_out)
            d.detach_many(lids, now + 2, client_ids=clients, out=l_out)
            d.drain_revoked(notices)
            d.drain_announces(announces)
            now += 3
        clock[0] = now

    req["client_id"] = np.arange(1, n + 1)
    cycles(500)
    gc.collect()
    blocks = sys.getallocatedblocks()
    cycles(2_000)
    gc.collect()
    assert sys.getallocatedblocks() - blocks <= 2
    tracemalloc.start(1)
    try:
        cycles(200)
        keep = [tracemalloc.Filter(True, __file__), tracemalloc.Filter(True, "*streamhsm*")]
        tracemalloc.take_snapshot().filter_traces(keep)
        cycles(200)
        before = tracemalloc.take_snapshot().filter_traces(keep)
        cycles(2_000)
        after = tracemalloc.take_snapshot().filter_traces(keep)
    finally:
        tracemalloc.stop()
    grown = [s for s in after.compare_to(before, "lineno") if s.size_diff > 0]
    assert sum(s.size_diff for s in grown) == 0, grown[:5]
    assert d.counters["keepalives"] == n * 4_900 and d.live_leases == 0
    assert ATTACH_RESULT_DTYPE.itemsize == 32


def test_batch_reasons_extend_the_attach_refusals() -> None:
    """attach_many writes the core's AttachRefusal code as the row's reason."""
    from streamhsm.driver.protocol import AttachRefusal

    assert {r.name: int(r) for r in AttachRefusal}.items() <= {
        r.name: int(r) for r in BatchReason}.items()
