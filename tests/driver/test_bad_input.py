"""Bad-input matrix of the driver: every Python-level misuse raises a clear exception naming the
value and changes nothing (not even the clock); protocol-level bad values get a response code and
a reason; the id map refuses bad keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamhsm import Driver, DriverConfig, ResponseCode, RevokeReason, Role, State, StreamTable

BIG = 2**70
NAN = float("nan")


def snap_table(t: StreamTable) -> tuple[Any, ...]:
    return (t.states.tobytes(), t.unhandled.tobytes(), t.unhandled_total, len(t),
            tuple(t.count(s) for s in State))


def driver() -> Driver:
    d = Driver(DriverConfig(static_stream_ids=(1, 2), allow_dynamic_streams=True,
                            dynamic_stream_id_range=(100, 110), stream_capacity=6,
                            lease_capacity=6))
    d.attach(1, Role.PRODUCER, 10, 0)
    d.attach(1, Role.CONSUMER, 11, 0)
    d.attach(100, Role.CONSUMER, 12, 0, create=True)
    return d


def snap_driver(d: Driver) -> tuple[Any, ...]:
    return (snap_table(d.streams), d.live_leases, dict(d.counters),
            [d.stream_info(s) for s in (1, 2, 100, 101)],
            [d.lease_state(x) for x in range(0, 6)], [d.lease_expiry(x) for x in range(1, 5)])


DRIVER_RAISES: list[tuple[str, Callable[[Driver], object], type[Exception], str]] = [
    ("attach stream float", lambda d: d.attach(1.0, Role.CONSUMER, 20, 1), TypeError,
     "stream_id must be an int, got float"),
    ("attach stream nan", lambda d: d.attach(NAN, Role.CONSUMER, 20, 1), TypeError,
     "got float nan"),
    ("attach role None", lambda d: d.attach(1, None, 20, 1), TypeError,
     "role must be an int, got NoneType"),
    ("attach role float", lambda d: d.attach(1, 1.0, 20, 1), TypeError,
     "role must be an int, got float"),
    ("attach client str", lambda d: d.attach(1, Role.CONSUMER, "20", 1), TypeError,
     "client_id must be an int"),
    ("attach now float", lambda d: d.attach(1, Role.CONSUMER, 20, 1.5), TypeError,
     "now_ns must be an int"),
    ("attach now negative", lambda d: d.attach(1, Role.CONSUMER, 20, -1), ValueError,
     "now_ns must be between 0 and .*, got -1"),
    ("attach create int", lambda d: d.attach(1, Role.CONSUMER, 20, 1, create=1), TypeError,
     "create must be a bool"),
    ("keepalive lease float", lambda d: d.keepalive(1.0, 1, client_id=10), TypeError,
     "lease_id must be an int"),
    ("keepalive now str", lambda d: d.keepalive(1, "1", client_id=10), TypeError,
     "now_ns must be an int"),
    ("detach lease None", lambda d: d.detach(None, 1, client_id=10), TypeError,
     "lease_id must be an int, got NoneType"),
    ("revoke lease nan", lambda d: d.revoke(NAN, 1), TypeError, "got float nan"),
    ("poll now float", lambda d: d.poll(1e9), TypeError, "now_ns must be an int, got float"),
    ("poll now negative", lambda d: d.poll(-5), ValueError,
     "now_ns must be between 0 and .*, got -5"),
    ("bump stream str", lambda d: d.bump_epoch("1"), TypeError, "stream_id must be an int"),
    ("request_shutdown now", lambda d: d.request_shutdown(None), TypeError,
     "now_ns must be an int"),
    ("stream_state str", lambda d: d.stream_state("1"), TypeError, "stream_id must be an int"),
    ("epoch float", lambda d: d.epoch(1.0), TypeError, "stream_id must be an int"),
    ("lease_state str", lambda d: d.lease_state("1"), TypeError, "lease_id must be an int"),
    ("drain_revoked wrong out", lambda d: d.drain_revoked(np.zeros(4)), TypeError,
     "REVOKED_NOTICE_DTYPE"),
    ("drain_announces short out", lambda d: d.drain_announces(np.zeros(0, np.int64)), ValueError,
     "out holds 0 entries, 3 announces are due"),
    # issue 9 item 11: times at the edge are refused before anything changes (clock included)
    ("attach now near int64 max",
     lambda d: d.attach(2, Role.CONSUMER, 20, 2**63 - 10, create=False),
     ValueError, "now_ns must be between 0 and"),
    ("attach creating near int64 max",
     lambda d: d.attach(105, Role.PRODUCER, 20, 2**63 - 10, create=True),
     ValueError, "now_ns must be between 0 and"),
    ("poll past int64", lambda d: d.poll(2**63 + 1), ValueError, "now_ns must be between 0 and"),
    ("keepalive near int64 max", lambda d: d.keepalive(1, 2**63 - 10, client_id=10), ValueError,
     "now_ns must be between 0 and"),
    ("detach near int64 max", lambda d: d.detach(1, 2**63 - 10, client_id=10), ValueError,
     "now_ns must be between 0 and"),
    ("shutdown near int64 max", lambda d: d.request_shutdown(2**63 - 10), ValueError,
     "now_ns must be between 0 and"),
    ("keepalive client str", lambda d: d.keepalive(1, 1, client_id="10"), TypeError,
     "client_id must be an int"),
    ("keepalive without client", lambda d: d.keepalive(1, 1), TypeError, "client_id"),
    ("detach without client", lambda d: d.detach(1, 1), TypeError, "client_id"),
    ("revoke reason", lambda d: d.revoke(1, 1, reason=RevokeReason.SHUTDOWN), ValueError,
     "revoke reason must be REVOKED or EXPIRED"),
]


@pytest.mark.parametrize(("name", "call", "exc", "match"), DRIVER_RAISES,
                         ids=[c[0] for c in DRIVER_RAISES])
def test_driver_python_misuse_raises(name: str, call: Callable[[Driver], object],
                                     exc: type[Exception], match: str) -> None:
    d = driver()
    before = snap_driver(d)
    with pytest.raises(exc, match=match):
        call(d)
    assert snap_driver(d) == before, f"{name} changed the driver"
    assert d.now_ns == 0, f"{name} moved the driver's clock"
    assert d.poll(1) == 0  # and the driver still works


REJ, INV = ResponseCode.REJECTED, ResponseCode.INVALID_PARAMS
DRIVER_RESPONDS: list[tuple[str, Callable[[Driver], Any], ResponseCode, str]] = [
    ("attach stream negative", lambda d: d.attach(-1, Role.CONSUMER, 20, 1), INV,
     "stream id -1 out of range"),
    ("attach stream huge", lambda d: d.attach(BIG, Role.CONSUMER, 20, 1), INV,
     f"stream id {BIG} out of range"),
    ("attach role code", lambda d: d.attach(1, 0, 20, 1), INV, "unknown role 0"),
    ("attach role name", lambda d: d.attach(1, "publisher", 20, 1), INV,
     "unknown role 'publisher'"),
    ("attach client zero", lambda d: d.attach(1, Role.CONSUMER, 0, 1), INV,
     "client id 0 out of range"),
    ("attach client huge", lambda d: d.attach(1, Role.CONSUMER, BIG, 1), INV,
     f"client id {BIG} out of range"),
    ("attach client negative", lambda d: d.attach(1, Role.CONSUMER, -4, 1), INV,
     "client id -4 out of range"),
    ("attach unknown stream", lambda d: d.attach(7, Role.CONSUMER, 20, 1), REJ, "unknown stream 7"),
    ("attach outside range", lambda d: d.attach(7, Role.CONSUMER, 20, 1, create=True), INV,
     "outside the dynamic range"),
    ("keepalive unknown", lambda d: d.keepalive(999, 1, client_id=10), REJ, "unknown lease"),
    ("keepalive zero", lambda d: d.keepalive(0, 1, client_id=10), REJ, "unknown lease"),
    ("keepalive huge", lambda d: d.keepalive(BIG, 1, client_id=10), REJ, "unknown lease"),
    ("keepalive negative", lambda d: d.keepalive(-3, 1, client_id=10), REJ, "unknown lease"),
    ("detach unknown", lambda d: d.detach(999, 1, client_id=10), REJ, "unknown lease"),
    # issue 9 item 15: another client's live lease answers exactly like an unknown lease
    ("keepalive other client", lambda d: d.keepalive(1, 1, client_id=11), REJ, "unknown lease"),
    ("detach other client", lambda d: d.detach(1, 1, client_id=11), REJ, "unknown lease"),
    ("detach wrong stream", lambda d: d.detach(1, 1, client_id=10, stream_id=2), REJ,
     "unknown lease"),
    ("detach wrong role", lambda d: d.detach(1, 1, client_id=10, role="consumer"), REJ,
     "unknown lease"),
    ("keepalive client zero", lambda d: d.keepalive(1, 1, client_id=0), REJ, "unknown lease"),
    ("detach client huge", lambda d: d.detach(1, 1, client_id=BIG), REJ, "unknown lease"),
    ("revoke huge", lambda d: d.revoke(BIG, 1), REJ, "unknown lease"),
    ("bump unknown", lambda d: d.bump_epoch(55), REJ, "unknown stream 55"),
    ("bump huge", lambda d: d.bump_epoch(BIG), REJ, f"unknown stream {BIG}"),
]


@pytest.mark.parametrize(("name", "call", "code", "reason"), DRIVER_RESPONDS,
                         ids=[c[0] for c in DRIVER_RESPONDS])
def test_driver_protocol_values_get_response_codes(name: str, call: Callable[[Driver], Any],
                                                   code: ResponseCode, reason: str) -> None:
    d = driver()
    before = snap_driver(d)
    rejected = d.counters["attaches_rejected"]
    r = call(d)
    assert r.code is code and reason in r.reason and not r
    after = snap_driver(d)
    if name.startswith("attach"):
        assert d.counters["attaches_rejected"] == rejected + 1
        before[2]["attaches_rejected"] = after[2]["attaches_rejected"]
    assert after == before, f"{name} changed the driver"


