"""Each driver counter counts exactly its own event (the core indexes its counter column with the
``Counter`` codes, and COUNTER_NAMES is derived from the same enum, so a swapped or misnumbered
counter shows up here as a change in the wrong name)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamhsm import COUNTER_NAMES, Driver, DriverConfig, Role
from streamhsm.driver import Counter

SEC = 1_000_000_000


def make() -> Driver:
    d = Driver(DriverConfig(static_stream_ids=(1,), allow_dynamic_streams=True,
                            dynamic_stream_id_range=(100, 110), stream_capacity=4,
                            lease_capacity=4, outbox_capacity=1))
    d.attach(1, Role.CONSUMER, 5, 0)  # lease 1: consumer on stream 1
    d.attach(1, Role.PRODUCER, 6, 0)  # lease 2: producer on stream 1
    return d


def delta(d: Driver, op: Callable[[Driver], object]) -> dict[str, int]:
    before = dict(d.counters)
    op(d)
    return {k: v - before[k] for k, v in d.counters.items() if v != before[k]}


CASES: list[tuple[str, Callable[[Driver], object], dict[str, int]]] = [
    ("attach ok", lambda d: d.attach(1, Role.CONSUMER, 7, 1), {"attaches_ok": 1}),
    ("attach rejected", lambda d: d.attach(9, Role.CONSUMER, 7, 1), {"attaches_rejected": 1}),
    ("keepalive", lambda d: d.keepalive(1, 1, client_id=5), {"keepalives": 1}),
    ("detach consumer", lambda d: d.detach(1, 1, client_id=5), {"leases_detached": 1}),
    ("revoke consumer", lambda d: d.revoke(1, 1), {"leases_revoked": 1}),
    ("bump", lambda d: d.bump_epoch(1), {"epoch_bumps": 1}),
    ("provision", lambda d: d.attach(100, Role.CONSUMER, 7, 1, create=True),
     {"attaches_ok": 1, "streams_provisioned": 1, "epoch_bumps": 1}),
    ("expire both (one notice dropped)", lambda d: d.poll(10 * SEC),
     {"leases_expired": 2, "epoch_bumps": 1, "revoke_notices_dropped": 1}),
]


@pytest.mark.parametrize(("name", "op", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_counter_counts_its_own_event(name: str, op: Callable[[Driver], object],
                                           expected: dict[str, int]) -> None:
    assert delta(make(), op) == expected


def test_idle_close_and_unhandled_counters() -> None:
    d = make()
    d.attach(100, Role.CONSUMER, 7, 1, create=True)
    assert delta(d, lambda d: d.detach(3, 2, client_id=7)) == {
        "leases_detached": 1, "streams_closed": 1}
    d.streams.dispatch(0, "StreamProvisioned")  # Active stream: unhandled
    assert d.counters["stream_hsm_unhandled"] == 1


def test_counter_names_follow_the_enum() -> None:
    assert COUNTER_NAMES == tuple(c.name.lower() for c in Counter)
    assert list(make().counters) == list(COUNTER_NAMES)
