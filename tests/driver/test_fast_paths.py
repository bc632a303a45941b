"""The single calls' Cython fast paths (issue 22, target 2): they take exact ``int`` arguments
only (a ``bool`` or any other type goes through the converting Python path and its errors), and
answer, count and change exactly what the Python path does (Hypothesis, against a twin driver
whose calls all take the Python path)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhsm import Driver, DriverConfig, Role

IDS = st.one_of(st.integers(-2, 10), st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 2**70]))


def driver() -> Driver:
    return Driver(DriverConfig(static_stream_ids=(1, 2), allow_dynamic_streams=True,
                               dynamic_stream_id_range=(100, 102), stream_capacity=4,
                               lease_capacity=5, lease_keepalive_interval_ns=1_000,
                               outbox_capacity=4))


@pytest.mark.parametrize(("call", "match"), [
    (lambda d: d.keepalive(True, 1, client_id=10), "lease_id must be an int, got bool True"),
    (lambda d: d.keepalive(1, True, client_id=10), "now_ns must be an int, got bool True"),
    (lambda d: d.keepalive(1, 1, client_id=True), "client_id must be an int, got bool True"),
    (lambda d: d.detach(True, 1, client_id=10), "lease_id must be an int, got bool True"),
    (lambda d: d.detach(1, 1, client_id=False), "client_id must be an int, got bool False"),
    (lambda d: d.attach(True, Role.CONSUMER, 11, 1), "stream_id must be an int, got bool True"),
    (lambda d: d.attach(1, True, 11, 1), "role must be an int, got bool True"),
    (lambda d: d.attach(1, Role.CONSUMER, True, 1), "client_id must be an int, got bool True"),
    (lambda d: d.attach(1, Role.CONSUMER, 11, True), "now_ns must be an int, got bool True"),
    (lambda d: d.attach(1, Role.CONSUMER, 11, 1, create=1), "create must be a bool, got int 1"),
])
def test_bools_never_take_the_fast_path(call: Any, match: str) -> None:
    d = driver()
    assert d.attach(1, Role.PRODUCER, 10, 0).lease_id == 1
    before = (d._leases.deadlines("expiry").tobytes(), d.counters, d.now_ns)
    with pytest.raises(TypeError, match=match):
        call(d)
    assert (d._leases.deadlines("expiry").tobytes(), d.counters, d.now_ns) == before


call = st.one_of(
    st.tuples(st.just("attach"), st.tuples(st.sampled_from([0, 1, 2, 3, 100, 102, 103, -1, 2**63]),
                                           st.sampled_from([0, 1, 2, 3, Role.PRODUCER]), IDS,
                                           st.booleans())),
    st.tuples(st.just("keepalive"), st.tuples(IDS, IDS)),
    st.tuples(st.just("detach"), st.tuples(IDS, IDS)),
    st.tuples(st.just("poll"), st.just(())),
    st.tuples(st.just("shutdown"), st.just(())),
)


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(st.tuples(call, st.integers(0, 2_000)), max_size=30))
def test_fast_paths_answer_like_the_python_path(calls: list[Any]) -> None:
    fast, slow = driver(), driver()
    now = 0
    for (kind, args), dt in calls:
        now += dt
        if kind == "attach":
            sid, role, client, create = args
            a = fast.attach(sid, role, client, now, create)
            b = slow._attach_slow(sid, role, client, now, create)
        elif kind in ("keepalive", "detach"):
            lid, client = args
            a = getattr(fast, kind)(lid, now, client_id=client)
            b = getattr(slow, f"_{kind}_slow")(lid, now, client, None, None)
        elif kind == "poll":
            a, b = fast.poll(now), slow.poll(now)
        else:
            a, b = fast.request_shutdown(now), slow.request_shutdown(now)
        assert a == b and type(a) is type(b)
        assert fast.counters == slow.counters and fast.now_ns == slow.now_ns
        assert np.array_equal(fast.drain_revoked(), slow.drain_revoked())
        assert np.array_equal(fast.streams.states, slow.streams.states)
    fa, sa = fast._core.columns_copy(), slow._core.columns_copy()
    assert all(np.array_equal(fa[k], sa[k]) for k in fa)


def test_fast_attach_results_are_whole_attach_results() -> None:
    """The fast path fills an AttachResult's slots directly: the object is the one the dataclass
    builds (equal, same hash, frozen), and it holds one reference to each field, given back
    when it dies (the stream id is the caller's own object)."""
    import dataclasses
    import sys

    from streamhsm.driver.protocol import AttachResult, ResponseCode

    big = 2**31 - 1  # not a cached small int
    d = Driver(DriverConfig(static_stream_ids=(big,), stream_capacity=1, lease_capacity=2,
                            lease_keepalive_interval_ns=1_000))
    sid = int(str(big))  # a fresh int object, referenced only here
    base = sys.getrefcount(sid)
    ok = d.attach(sid, Role.PRODUCER, 7, 5)
    refused = d.attach(sid, Role.PRODUCER, 8, 5)
    assert type(ok) is AttachResult and type(refused) is AttachResult
    assert ok == AttachResult(ResponseCode.OK, 1, big, 2, "", ok.expiry_ns) and ok.expiry_ns > 5
    assert hash(ok) == hash(AttachResult(ResponseCode.OK, 1, big, 2, "", ok.expiry_ns))
    assert refused == AttachResult(ResponseCode.REJECTED, 0, big, 0, refused.reason, 0)
    assert refused.reason and not refused
    assert ok.stream_id is sid and refused.stream_id is sid
    assert sys.getrefcount(sid) == base + 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        ok.lease_id = 2  # type: ignore[misc]
    del ok, refused
    assert sys.getrefcount(sid) == base


def test_fast_attaches_answer_the_expiry_of_their_own_time() -> None:
    """Attaches at one time share their expiry's int object; an attach at a later time answers
    its own expiry, never the last one answered."""
    d = Driver(DriverConfig(static_stream_ids=(1, 2, 3), lease_keepalive_interval_ns=1_000))
    ttl = d.config.lease_expiry_ns
    a, b = d.attach(1, Role.CONSUMER, 5, 10), d.attach(2, Role.CONSUMER, 6, 10)
    c = d.attach(3, Role.CONSUMER, 7, 20)
    assert a.expiry_ns == b.expiry_ns == 10 + ttl and c.expiry_ns == 20 + ttl
    assert a.expiry_ns is b.expiry_ns  # one int for the burst
    assert [d.lease_expiry(r.lease_id) for r in (a, b, c)] == [10 + ttl, 10 + ttl, 20 + ttl]
