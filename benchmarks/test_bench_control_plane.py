"""The driver's control plane (issue 22): single calls beside a Python function with the same
arguments on 20,000 streams (group ``driver-calls``), and on ``sizes.leases`` live leases 100,000
keepalives in random lease order through ``keepalive_many``, through the single call, and
through the bare Cython loop :class:`~streamhsm.tools._floor.KeepaliveFloor` (group
``control-plane``). Compare the rows of a group in one run; ``python -m streamhsm bench`` prints
the ratios with their targets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streamhsm import Driver, DriverConfig, Role, lease_results
from streamhsm.tools._floor import KeepaliveFloor
from streamhsm.tools.bench import live_driver

STREAMS = 20_000
KEEPALIVES = 100_000


def _py_lease(lease_id: int, now_ns: int, *, client_id: int) -> None:
    """The call floor: a Python function with keepalive's arguments."""


@pytest.fixture(scope="module")
def attached() -> tuple[Driver, list[tuple[int, int]]]:
    d = Driver(DriverConfig(static_stream_ids=tuple(range(1, STREAMS + 1)),
                            stream_capacity=STREAMS, lease_capacity=STREAMS,
                            lease_keepalive_interval_ns=10**12))
    pairs = [(d.attach(s, Role.CONSUMER, s, 0).lease_id, s) for s in range(1, STREAMS + 1)]
    return d, pairs


@pytest.mark.benchmark(group="driver-calls")
def test_python_function_floor(benchmark: Any, attached: Any) -> None:
    _, pairs = attached

    def run() -> None:
        for lid, c in pairs:
            _py_lease(lid, 1, client_id=c)

    benchmark(run)


@pytest.mark.benchmark(group="driver-calls")
def test_keepalive_single(benchmark: Any, attached: Any) -> None:
    d, pairs = attached
    keep = d.keepalive

    def run() -> None:
        for lid, c in pairs:
            keep(lid, 1, client_id=c)

    benchmark(run)
    assert d.counters["keepalives"] > 0


@pytest.fixture(scope="module")
def live(sizes: Any) -> tuple[Driver, np.ndarray, np.ndarray, KeepaliveFloor]:
    d, lids, clients = live_driver(sizes.leases)
    floor = KeepaliveFloor(lids, clients)
    n = min(KEEPALIVES, sizes.leases)
    return d, lids[:n].copy(), clients[:n].copy(), floor


@pytest.mark.benchmark(group="control-plane")
def test_keepalive_many(benchmark: Any, live: Any) -> None:
    d, lids, clients, _ = live
    out = lease_results(len(lids))
    benchmark(d.keepalive_many, lids, 1, client_ids=clients, out=out)
    assert (out["code"] == 0).all()
    benchmark.extra_info["keepalives_per_round"] = len(lids)


@pytest.mark.benchmark(group="control-plane")
def test_keepalive_floor(benchmark: Any, live: Any) -> None:
    _, lids, clients, floor = live
    assert benchmark(floor.run, lids, clients, 1) == len(lids)
    benchmark.extra_info["keepalives_per_round"] = len(lids)


@pytest.mark.benchmark(group="control-plane")
def test_keepalive_single_calls(benchmark: Any, live: Any) -> None:
    d, lids, clients, _ = live
    pairs = list(zip(lids.tolist(), clients.tolist(), strict=True))
    keep = d.keepalive

    def run() -> None:
        for lid, c in pairs:
            keep(lid, 1, client_id=c)

    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["keepalives_per_round"] = len(lids)
