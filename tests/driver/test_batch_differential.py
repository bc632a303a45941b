"""Hypothesis: random request sequences through the batch calls (``attach_many``,
``keepalive_many``, ``detach_many``) on one driver and, request by request, through the single
calls on a twin driver: identical answers row by row, counters, states, epochs, outboxes and
snapshots after every step (issue 22, target 1)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamhsm import (
    ATTACH_RESULT_DTYPE,
    BatchReason,
    Driver,
    DriverConfig,
    ResponseCode,
    attach_requests,
    lease_results,
)

STATIC = (1, 2)
IDS = st.one_of(st.integers(-2, 12), st.sampled_from([2**63 - 1, -(2**63)]))
CLIENTS = st.one_of(st.integers(-1, 7), st.sampled_from([2**63 - 1, -(2**63)]))
STREAMS = st.one_of(st.sampled_from([0, 1, 2, 3, 99, 100, 101, 102, 103, 104]),
                    st.sampled_from([-1, 2**31, 2**62]))

#: The single calls' reason texts, by the batch reason code that stands for them.
REASONS = [
    (r"^$", BatchReason.NONE),
    (r"^unknown role", BatchReason.ROLE),
    (r"^stream id -?\d+ out of range", BatchReason.STREAM_ID),
    (r"^client id", BatchReason.CLIENT_ID),
    (r"^client_id already attached", BatchReason.CLIENT_HOLDS_LEASE),
    (r"^unknown stream", BatchReason.UNKNOWN_STREAM),
    (r"outside the dynamic range", BatchReason.OUTSIDE_DYNAMIC_RANGE),
    (r"^stream capacity exhausted", BatchReason.STREAM_CAPACITY),
    (r"^producer already attached", BatchReason.PRODUCER_ATTACHED),
    (r"^stream draining", BatchReason.STREAM_DRAINING),
    (r"^epoch of stream", BatchReason.EPOCH_AT_MAXIMUM),
    (r"^lease capacity exhausted", BatchReason.LEASE_CAPACITY),
    (r"^lease ids exhausted", BatchReason.LEASE_IDS_EXHAUSTED),
    (r"^driver draining", BatchReason.DRIVER_DRAINING),
    (r"^driver stopped", BatchReason.DRIVER_STOPPED),
    (r"^unknown lease", BatchReason.UNKNOWN_LEASE),
    (r"^lease (already )?ended", BatchReason.LEASE_ENDED),
]


def reason_code(text: str) -> BatchReason:
    for pattern, code in REASONS:
        if re.search(pattern, text):
            return code
    raise AssertionError(f"no batch reason for {text!r}")


def driver(policy: bool, outbox: int) -> Driver:
    return Driver(DriverConfig(static_stream_ids=STATIC, allow_dynamic_streams=True,
                               dynamic_stream_id_range=(100, 103), stream_capacity=5,
                               lease_capacity=6, lease_keepalive_interval_ns=1_000,
                               outbox_capacity=outbox, drain_on_producer_loss=policy))


def same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def check_twins(batch: Driver, single: Driver) -> None:
    assert batch.counters == single.counters
    assert np.array_equal(batch.streams.states, single.streams.states)
    assert np.array_equal(batch._leases.states, single._leases.states)
    assert batch.now_ns == single.now_ns
    assert np.array_equal(batch.drain_announces(), single.drain_announces())
    assert np.array_equal(batch.drain_revoked(), single.drain_revoked())
    assert same(batch.snapshot(), single.snapshot())


attach_row = st.tuples(STREAMS, st.integers(0, 3), CLIENTS, st.booleans())
lease_row = st.tuples(IDS, CLIENTS)
step = st.one_of(
    st.tuples(st.just("attach"), st.lists(attach_row, max_size=8)),
    st.tuples(st.just("keepalive"), st.lists(lease_row, max_size=8)),
    st.tuples(st.just("detach"), st.lists(lease_row, max_size=8)),
    st.tuples(st.just("poll"), st.just(None)),
    st.tuples(st.just("shutdown"), st.just(None)),
    st.tuples(st.just("bump"), st.sampled_from([1, 2, 100, 101])),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(step, st.integers(0, 2_500)), max_size=25),
       policy=st.booleans(), outbox=st.integers(1, 8), use_out=st.booleans())
def test_batches_answer_like_the_single_calls(steps: list[Any], policy: bool, outbox: int,
                                              use_out: bool) -> None:
    b, s = driver(policy, outbox), driver(policy, outbox)
    now = 0
    for (kind, arg), dt in steps:
        now += dt
        if kind == "attach":
            req = attach_requests(len(arg))
            for i, (sid, role, client, create) in enumerate(arg):
                req[i] = (np.int64(sid), role, np.int64(client), create)
            out = np.zeros(len(arg) + 2, ATTACH_RESULT_DTYPE) if use_out else None
            rows = b.attach_many(req, now, out=out)
            assert len(rows) == len(arg)
            for row, (sid, role, client, create) in zip(rows, arg, strict=True):
                r = s.attach(sid, role, client, now, create=create)
                assert (int(row["code"]), int(row["lease_id"]), int(row["epoch"]),
                        int(row["expiry_ns"])) == (r.code, r.lease_id, r.epoch, r.expiry_ns)
                assert row["reason"] == reason_code(r.reason), r
        elif kind in ("keepalive", "detach"):
            lids = np.array([x[0] for x in arg], np.int64)
            clients = np.array([x[1] for x in arg], np.int64)
            out = lease_results(len(arg) + 1) if use_out else None
            rows = getattr(b, kind + "_many")(lids, now, client_ids=clients, out=out)
            assert len(rows) == len(arg)
            for row, (lid, client) in zip(rows, arg, strict=True):
                r = getattr(s, kind)(lid, now, client_id=client)
                assert (int(row["code"]), int(row["epoch"])) == (r.code, r.epoch), (row, r)
                assert row["reason"] == reason_code(r.reason), r
                ok_keepalive = kind == "keepalive" and r.code == ResponseCode.OK
                assert row["expiry_ns"] == (now + 3_000 if ok_keepalive else 0)
        elif kind == "poll":
            assert b.poll(now) == s.poll(now)
        elif kind == "shutdown":
            assert b.request_shutdown(now) == s.request_shutdown(now)
        else:
            assert b.bump_epoch(arg, now_ns=now) == s.bump_epoch(arg, now_ns=now)
        check_twins(b, s)
